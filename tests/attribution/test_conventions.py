"""circuit-tracer's conventions as `attribute` options, checked without circuit-tracer.

- `token_nodes="embed"`: with exact patching, a token node's effect is the metric's change when the
  token embedding alone (`hook_embed`) is zeroed at its position, by a raw TransformerLens hook;
- `exclude_bos`: no feature or error node at position 0;
- `metric="salient-logits"`: the probability-weighted demeaned logits, recomputed by hand;
- scores are recorded and pruning keeps a subset; the CLI flags reach `attribute`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import PromptSet, attribute
from feature_lens.attribution.replacement_scores import DemeanedLogit, SalientLogits
from feature_lens.cli import main
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from tests.conftest import make_model, make_sae

F64 = torch.float64
TOKENS = [[0, 3, 7, 4, 9, 5]]


def _lens() -> Lens:
    model = make_model(n_layers=2, d_model=16, dtype=F64)
    sae = make_sae("standard", 16, "blocks.0.hook_resid_post", seed=1, dtype=F64)
    return Lens(model, [sae])


def test_token_nodes_embed_move_the_token_embedding_alone() -> None:
    lens = _lens()
    prompts = PromptSet.build(lens, torch.tensor(TOKENS))
    metric = DemeanedLogit(5)
    graph = attribute(
        lens, prompts, metric, method="exact", baseline="zero", token_nodes="embed",
        max_nodes=500, edges=False, progress=False,
    )  # fmt: skip
    tokens = [n for n in graph.table.nodes if n.kind == "token"]
    assert len(tokens) == len(TOKENS[0])
    model = lens.model
    with torch.no_grad():
        clean = model(torch.tensor(TOKENS))[0, -1]
    for node in tokens:
        assert node.pos is not None

        def zero(value: torch.Tensor, hook: object, pos: int = node.pos) -> torch.Tensor:
            value = value.clone()
            value[:, pos] = 0
            return value

        with torch.no_grad():
            patched = model.run_with_hooks(torch.tensor(TOKENS), fwd_hooks=[("hook_embed", zero)])[
                0, -1
            ]
        expected = (clean[5] - clean.mean()) - (patched[5] - patched.mean())
        effect = float(graph.table.effect[graph.table.row_of[node.id]])
        assert abs(effect - float(expected)) < 1e-9 * max(1.0, abs(float(expected)))
    # With resid_pre tokens the positional embedding moves too: a different effect.
    other = attribute(
        lens, prompts, metric, method="exact", baseline="zero", max_nodes=500, edges=False,
        progress=False,
    )  # fmt: skip
    row = other.table.row_of[tokens[1].id]
    assert (
        abs(
            float(other.table.effect[row])
            - float(graph.table.effect[graph.table.row_of[tokens[1].id]])
        )
        > 1e-6
    )


def test_exclude_bos_and_salient_logits() -> None:
    lens = _lens()
    prompts = PromptSet.build(lens, torch.tensor(TOKENS))
    graph = attribute(
        lens, prompts, "salient-logits", method="direct", baseline="zero", exclude_bos=True,
        max_nodes=500, progress=False,
    )  # fmt: skip
    assert all(n.pos != 0 for n in graph.table.nodes if n.kind in ("feature", "error"))
    assert any(n.pos == 0 for n in graph.table.nodes if n.kind == "token")
    with torch.no_grad():
        logits = lens.model(torch.tensor(TOKENS))[0, -1].double()
    probs = torch.softmax(logits, -1)
    top = torch.sort(probs, descending=True)
    count = int(torch.nonzero(torch.cumsum(top.values, 0) >= 0.95)[0, 0]) + 1
    count = min(count, 10)
    ids = top.indices[:count]
    expected = float((probs[ids] * (logits[ids] - logits.mean())).sum())
    assert abs(graph.settings["metric_clean"] - expected) < 1e-9
    assert graph.metric == SalientLogits.name
    assert 0 <= graph.settings["replacement_score"] <= 1
    assert 0 <= graph.settings["completeness_score"] <= 1
    pruned = attribute(
        lens, prompts, "salient-logits", method="direct", baseline="zero", exclude_bos=True,
        max_nodes=500, prune=(0.5, 0.9), progress=False,
    )  # fmt: skip
    assert set(pruned.table.nodes) < set(graph.table.nodes)
    assert pruned.n_edges < graph.n_edges


def test_cli_flags(tmp_path: Path, capsys: object) -> None:
    from tests.test_loading import _save_gpt2_folder

    _save_gpt2_folder(tmp_path / "model", tmp_path / "tok")
    sae = make_sae("standard", 32, "blocks.0.hook_resid_post", seed=0, model_name="")
    sae.save_model(tmp_path / "sae")
    out = tmp_path / "g.json"
    args = [
        "attribute", "--model", str(tmp_path / "model"), "--sae", str(tmp_path / "sae"),
        "--prompt", "w1 w2 w3 w4", "--metric", "salient-logits", "--method", "direct",
        "--baseline", "zero", "--exclude-bos", "--token-nodes", "embed",
        "--max-feature-nodes", "5", "--prune", "0.8", "0.98", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    graph = AttributionGraph.load(out)
    settings = graph.settings
    assert settings["exclude_bos"] is True
    assert settings["token_nodes"] == "embed"
    assert settings["max_feature_nodes"] == 5
    assert settings["prune"] == [0.8, 0.98]
    assert sum(1 for n in graph.table.nodes if n.kind == "feature") <= 5
    assert "replacement score" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_greedy_selection_follows_influence_through_computed_rows() -> None:
    """Hand-made graph: features f0..f3, one logit. Directly, f1 (0.4) > f3 (0.3) > f2 (0.2) >
    f0 (0.1); f1's own input is all f0, so once f1's row is known f0's influence is
    0.1 + 0.4 * 1.0 = 0.5 and it is picked next, ahead of f3."""
    from feature_lens.attribution.influence import greedy_rows

    n = 5  # f0..f3, logit
    logit = torch.tensor([[0.1, 0.4, 0.2, 0.3, 0.0]], dtype=F64)
    inputs = torch.zeros(4, n, dtype=F64)
    inputs[1, 0] = 2.0
    asked: list[list[int]] = []

    def rows(index: torch.Tensor) -> torch.Tensor:
        asked.append(index.tolist())
        return inputs[index]

    selected, got = greedy_rows(4, 2, logit, torch.ones(1, dtype=F64), rows, batch_size=1,
                                update_interval=1)  # fmt: skip
    assert asked == [[1], [0]]
    assert selected.tolist() == [0, 1]
    torch.testing.assert_close(got, inputs[[0, 1]])
    # Without the refresh (one ranking for both picks) f3 would have come second.
    asked.clear()
    selected, _ = greedy_rows(4, 2, logit, torch.ones(1, dtype=F64), rows, batch_size=1,
                              update_interval=2)  # fmt: skip
    assert selected.tolist() == [1, 3]


def test_conventions_are_refused_clearly() -> None:
    lens = _lens()
    two = PromptSet.build(lens, torch.tensor(TOKENS * 2))
    with pytest.raises(InputError, match="one prompt"):
        attribute(lens, two, "salient-logits", method="direct", progress=False)
    with pytest.raises(InputError, match="zero baseline"):
        attribute(
            lens,
            two,
            DemeanedLogit(1),
            baseline="mean",
            token_nodes="embed",
            progress=False,
            mean_tokens=torch.tensor(TOKENS),
        )
    one = PromptSet.build(lens, torch.tensor(TOKENS))
    with pytest.raises(InputError, match="--prune"):
        attribute(lens, one, DemeanedLogit(1), prune=(0.8, 1.5), progress=False)
    with pytest.raises(InputError, match="--positions keep"):
        attribute(lens, one, DemeanedLogit(1), exclude_bos=True, positions="sum", progress=False)
    with pytest.raises(InputError, match="--max-feature-nodes"):
        attribute(lens, one, DemeanedLogit(1), max_feature_nodes=0, progress=False)
