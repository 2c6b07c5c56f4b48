"""feature-lens's direct attribution equals circuit-tracer 0.5.0's `attribute` edge for edge.

One random GPT-2-style model (saved as a Hugging Face folder) and random per-layer skip
transcoders written in circuit-tracer's format; circuit-tracer runs in its own virtual environment
(`tests/circuit_tracer_reference.py` as a subprocess), feature-lens here, under matching options:
weights loaded without LayerNorm folding or centring (as circuit-tracer loads them), direct
attribution with MLP outputs held (`mlp="stop"`), a zero baseline for features and errors, and
the token nodes' baseline the positional embedding (so a token node is its token embedding alone,
as in circuit-tracer). Feature->feature, error->feature, token->feature and feature->logit edges
(logit = demeaned unembedding at the last position) are compared.

The reference Python is `$FEATURE_LENS_CIRCUIT_TRACER_PYTHON` (`bash scripts/test.sh` builds that
virtual environment); the test is skipped, saying so, when it is unset or lacks circuit-tracer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from feature_lens import Lens
from feature_lens.attribution import (
    Node,
    NodeValues,
    PromptState,
    direct_edge_matrix,
    direct_node_effects,
    node_values,
)
from feature_lens.attribution.replacement_scores import graph_scores, salient_logits
from feature_lens.lens import EMBED_SITE
from tests.circuit_tracer_format import write_transcoder_set
from tests.test_loading import _save_gpt2_folder

F64 = torch.float64
TOKENS = [0, 3, 7, 4, 9, 12, 5]
RAW = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False}


def _reference_python() -> str:
    candidates = [os.environ.get("FEATURE_LENS_CIRCUIT_TRACER_PYTHON")]  # set by scripts/test.sh
    for python in candidates:
        if not python or not Path(python).is_file():
            continue
        check = subprocess.run(
            [python, "-c", "import circuit_tracer"], capture_output=True, check=False
        )
        if check.returncode == 0:
            return python
    pytest.skip(
        "circuit-tracer is not installed: set FEATURE_LENS_CIRCUIT_TRACER_PYTHON to the Python of "
        "a virtual environment with `pip install circuit-tracer==0.5.0`"
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    python = _reference_python()
    root = tmp_path_factory.mktemp("ct-equality")
    _save_gpt2_folder(root / "gpt2-tiny", root / "tok")
    sets = root / "sets" / "gpt2-tiny-skip"
    write_transcoder_set(sets, n_layers=2, d_model=32, kind="skip", model_name="gpt2-tiny", seed=3)
    out = root / "graph.safetensors"
    script = Path(__file__).with_name("circuit_tracer_reference.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # circuit-tracer's own environment only
    done = subprocess.run(
        [
            python,
            str(script),
            str(root / "gpt2-tiny"),
            str(sets),
            ",".join(map(str, TOKENS)),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "gpt2-tiny", sets, load_file(str(out))


def _state(lens: Lens, tokens: torch.Tensor) -> PromptState:
    """Zero baseline for features and errors; tokens' baseline the positional embedding."""
    clean = node_values(lens, tokens)
    token_embedding = lens.model.W_E[tokens].detach()
    base = NodeValues(
        {s: torch.zeros_like(v) for s, v in clean.features.items()},
        {s: torch.zeros_like(v) for s, v in clean.errors.items()},
        clean.embeddings - token_embedding,
    )
    return PromptState(tokens, None, clean, base)


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = float(theirs.abs().max())
    assert scale > 1e-3  # a comparison of zeros would prove nothing
    torch.testing.assert_close(ours.to(theirs.dtype), theirs, atol=2e-5 * scale, rtol=1e-4)


def test_edges_equal_circuit_tracer(reference: tuple[Path, Path, dict[str, Any]]) -> None:
    model_folder, sets, ct = reference
    lens = Lens.load(model_folder, sets, dtype=F64, processing=RAW)
    tokens = torch.tensor([TOKENS])
    state = _state(lens, tokens)
    n_layers, n_pos = lens.model.cfg.n_layers, len(TOKENS)
    sites = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]

    active = ct["active_features"]  # [n, 3] (layer, pos, index), BOS excluded by circuit-tracer
    features = [Node("feature", sites[int(lay)], int(p), int(i)) for lay, p, i in active.tolist()]
    n_feat = len(features)
    ours_values = torch.stack([state.clean.features[f.site][0, f.pos, f.index] for f in features])
    _close(ours_values, ct["activation_values"])
    # Every feature active after BOS in our run is one of circuit-tracer's nodes.
    assert sum(int((state.clean.features[s][0, 1:] > 0).sum()) for s in sites) == n_feat

    errors = [Node("error", sites[lay], p) for lay in range(n_layers) for p in range(n_pos)]
    token_nodes = [Node("token", EMBED_SITE, p) for p in range(n_pos)]
    upstream = features + errors + token_nodes
    matrix = direct_edge_matrix(lens, state, upstream, features, mlp="stop")  # [U, T]
    adjacency = ct["adjacency"]  # [targets, sources], nodes: features, errors, tokens, logits
    theirs = adjacency[:n_feat, : n_feat + len(errors) + n_pos].T
    # circuit-tracer zeroes error vectors at BOS: compare errors after it.
    keep = torch.ones(len(upstream), dtype=torch.bool)
    keep[[n_feat + lay * n_pos for lay in range(n_layers)]] = False
    _close(matrix[:n_feat], theirs[:n_feat])  # feature -> feature
    _close(matrix[n_feat:-n_pos][keep[n_feat:-n_pos]], theirs[n_feat:-n_pos][keep[n_feat:-n_pos]])
    _close(matrix[-n_pos:], theirs[-n_pos:])  # token -> feature

    # Targets: the salient logits, each the demeaned unembedding at the last position.
    with torch.no_grad():
        logits = lens.run(tokens).logits[0]
    targets = salient_logits(logits, lens.model.W_U)
    assert targets.tokens.tolist() == ct["logit_ids"].tolist()
    _close(targets.probabilities, ct["logit_probabilities"].to(F64))
    n_logits = len(targets.tokens)
    logit_rows = []
    for row, metric in enumerate(targets.metrics()):
        effects = direct_node_effects(lens, state, metric, upstream)
        ours = torch.tensor([effects[u] for u in upstream], dtype=F64)
        theirs_row = adjacency[len(adjacency) - n_logits + row, : len(upstream)].to(F64)
        _close(ours[keep], theirs_row[keep])  # feature, error and token -> logit
        logit_rows.append(ours)

    # Replacement and completeness scores: circuit-tracer's on its graph, ours on its adjacency
    # and on ours (built from our edges, error nodes at BOS zeroed as circuit-tracer does).
    n = len(adjacency)
    kinds = (
        ["feature"] * n_feat + ["error"] * len(errors) + ["token"] * n_pos + ["logit"] * n_logits
    )
    weights = torch.zeros(n, dtype=F64)
    weights[-n_logits:] = ct["logit_probabilities"].to(F64)
    expected = ct["scores"].tolist()
    assert graph_scores(adjacency, kinds, weights) == pytest.approx(expected, abs=1e-6)
    ours_adjacency = torch.zeros(n, n, dtype=F64)
    ours_adjacency[:n_feat, : len(upstream)] = matrix.T * keep.to(F64)
    ours_adjacency[-n_logits:, : len(upstream)] = torch.stack(logit_rows) * keep.to(F64)
    assert graph_scores(ours_adjacency, kinds, weights) == pytest.approx(expected, abs=1e-5)
    assert 0 < expected[0] < 1
    assert 0 < expected[1] < 1
