"""feature-lens's direct attribution over a cross-layer transcoder equals circuit-tracer 0.5.0's
`attribute` edge for edge.

As `tests/test_circuit_tracer_equality.py` does for per-layer transcoders, with a random CLT written
in circuit-tracer's format (`W_enc_L` / `W_dec_L` safetensors): one random GPT-2-style model, the
reference run in circuit-tracer's own virtual environment (`tests/circuit_tracer_reference.py`,
whose cache loader reads CLT folders too), matching options (no LayerNorm folding or centring,
MLP outputs held, zero baseline for features and errors, token nodes as the token embedding
alone). A CLT feature's edges sum its writes into every later layer on both sides;
feature->feature, error->feature, token->feature and feature->logit edges are compared.
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
from feature_lens.attribution import Node, direct_edge_matrix, direct_node_effects
from feature_lens.attribution.replacement_scores import graph_scores, salient_logits
from feature_lens.lens import EMBED_SITE, CrossLayerSite
from tests.circuit_tracer_clt_format import write_clt
from tests.test_circuit_tracer_equality import RAW, TOKENS, _close, _reference_python, _state
from tests.test_loading import _save_gpt2_folder

F64 = torch.float64


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    python = _reference_python()
    root = tmp_path_factory.mktemp("ct-clt-equality")
    _save_gpt2_folder(root / "gpt2-tiny", root / "tok")
    clt = root / "sets" / "gpt2-tiny-clt"
    write_clt(clt, n_layers=2, d_model=32, jumprelu=True, model_name="gpt2-tiny", seed=5)
    out = root / "graph.safetensors"
    script = Path(__file__).with_name("circuit_tracer_reference.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # circuit-tracer's own environment only
    done = subprocess.run(
        [
            python,
            str(script),
            str(root / "gpt2-tiny"),
            str(clt),
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
    return root / "gpt2-tiny", clt, load_file(str(out))


def test_clt_edges_equal_circuit_tracer(reference: tuple[Path, Path, dict[str, Any]]) -> None:
    model_folder, clt, ct = reference
    lens = Lens.load(model_folder, clt, dtype=F64, processing=RAW)
    assert all(isinstance(d, CrossLayerSite) for d in lens.dictionaries.values())
    tokens = torch.tensor([TOKENS])
    state = _state(lens, tokens)
    n_layers, n_pos = lens.model.cfg.n_layers, len(TOKENS)
    sites = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]

    active = ct["active_features"]  # [n, 3] (layer, pos, index), BOS excluded by circuit-tracer
    features = [Node("feature", sites[int(lay)], int(p), int(i)) for lay, p, i in active.tolist()]
    n_feat = len(features)
    assert any(f.site == sites[0] for f in features)
    ours_values = torch.stack([state.clean.features[f.site][0, f.pos, f.index] for f in features])
    _close(ours_values, ct["activation_values"])
    assert sum(int((state.clean.features[s][0, 1:] != 0).sum()) for s in sites) == n_feat

    errors = [Node("error", sites[lay], p) for lay in range(n_layers) for p in range(n_pos)]
    token_nodes = [Node("token", EMBED_SITE, p) for p in range(n_pos)]
    upstream = features + errors + token_nodes
    matrix = direct_edge_matrix(lens, state, upstream, features, mlp="stop")  # [U, T]
    adjacency = ct["adjacency"]  # [targets, sources]: features, errors, tokens, logits
    theirs = adjacency[:n_feat, : len(upstream)].T
    keep = torch.ones(len(upstream), dtype=torch.bool)
    keep[[n_feat + lay * n_pos for lay in range(n_layers)]] = False  # errors at BOS: zeroed there
    _close(matrix[:n_feat], theirs[:n_feat])  # feature -> feature
    _close(matrix[n_feat:-n_pos][keep[n_feat:-n_pos]], theirs[n_feat:-n_pos][keep[n_feat:-n_pos]])
    _close(matrix[-n_pos:], theirs[-n_pos:])  # token -> feature

    with torch.no_grad():
        logits = lens.run(tokens).logits[0]
    targets = salient_logits(logits, lens.model.W_U)
    assert targets.tokens.tolist() == ct["logit_ids"].tolist()
    n_logits = len(targets.tokens)
    logit_rows = []
    for row, metric in enumerate(targets.metrics()):
        effects = direct_node_effects(lens, state, metric, upstream)
        ours = torch.tensor([effects[u] for u in upstream], dtype=F64)
        theirs_row = adjacency[len(adjacency) - n_logits + row, : len(upstream)].to(F64)
        _close(ours[keep], theirs_row[keep])  # feature, error and token -> logit
        logit_rows.append(ours)

    # circuit-tracer's replacement and completeness scores, from a graph built of our edges.
    n = len(adjacency)
    kinds = (
        ["feature"] * n_feat + ["error"] * len(errors) + ["token"] * n_pos + ["logit"] * n_logits
    )
    weights = torch.zeros(n, dtype=F64)
    weights[-n_logits:] = ct["logit_probabilities"].to(F64)
    ours_adjacency = torch.zeros(n, n, dtype=F64)
    ours_adjacency[:n_feat, : len(upstream)] = matrix.T * keep.to(F64)
    ours_adjacency[-n_logits:, : len(upstream)] = torch.stack(logit_rows) * keep.to(F64)
    expected = ct["scores"].tolist()
    assert graph_scores(ours_adjacency, kinds, weights) == pytest.approx(expected, abs=1e-5)
    assert 0 < expected[0] < 1
