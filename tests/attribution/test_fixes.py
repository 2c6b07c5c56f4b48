"""Regression tests of Engine v2's semantics fixes, each against an independent computation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Directions, InputError, Lens
from feature_lens.attribution import (
    LogitDiff,
    NodeActivation,
    PromptSet,
    attribute,
    candidate_nodes,
    circuit_nodes,
    faithfulness,
    feature,
    integrated_gradient_node_effects,
    prompt_states,
)
from feature_lens.cli import main
from feature_lens.clustering import connectivity_profiles, decoder_clusters
from feature_lens.graph import AttributionGraph
from tests.attribution.conftest import CLEAN, CORRUPT, read_feature, splice_reference_hooks
from tests.conftest import full_dictionaries

METRIC = LogitDiff()


def _zero_everything_metric(lens: Lens, model: Any, tokens: torch.Tensor) -> float:
    """Raw hooks: token embeddings zeroed, every dictionary's features and error term zeroed."""
    hooks: list[tuple[str, Any]] = [("blocks.0.hook_resid_pre", lambda act, hook: act * 0)]
    for site in lens.sites:
        hooks += splice_reference_hooks(
            lens, site, lambda f, e: (torch.zeros_like(f), torch.zeros_like(e)), {}
        )
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return float(logits[0, -1, 5] - logits[0, -1, 9])


def test_metric_effect_without_corrupted_prompts(lens64: Lens, model64: Any) -> None:
    """Without corrupted prompts the metric node's effect is m(clean) - m(every node at its
    baseline), finite, checked against raw hooks (it used to be NaN)."""
    prompts = PromptSet.build(lens64, CLEAN, answers=[[5, 9]])
    graph = attribute(lens64, prompts, METRIC, method="attribution", max_nodes=4, progress=False)
    with torch.no_grad():
        clean = float(METRIC(lens64.forward(prompts.clean), prompts.answers)[0])  # type: ignore[arg-type]
    expected = clean - _zero_everything_metric(lens64, model64, prompts.clean)
    # The Lens's splices add differences to the stream, the reference hooks write b_dec: rounding
    # differs by ~1e-9 in float64 here; a wrong definition is off by O(0.1).
    assert graph.metric_node.effect == pytest.approx(expected, abs=1e-7)
    assert graph.settings["metric_baseline"] == pytest.approx(clean - expected, abs=1e-7)


def test_cli_graph_without_corrupted_prompts_loads_in_cluster_and_dashboard(
    tmp_path: Path,
) -> None:
    out = tmp_path / "g.json"
    args = ["attribute", "--prompt", "when anna and adam went to the market , adam sent a flower to", "--correct", "anna", "--wrong", "adam", "--method",
            "direct", "--positions", "sum", "--max-nodes", "12", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    graph = AttributionGraph.load(out)
    assert graph.metric_node.effect == pytest.approx(
        graph.settings["metric_clean"] - graph.settings["metric_baseline"]
    )
    assert main(["cluster", str(out), "-k", "2", "--out", str(tmp_path / "c.json")]) == 0
    dash = ["dashboard", "--graph", str(out), "--out", str(tmp_path / "dash"),
            "--n-prompts", "8", "--top-k", "1"]  # fmt: skip
    assert main(dash) == 0
    assert (tmp_path / "dash" / "index.html").is_file()


def test_node_activation_is_the_mean_over_all_prompts(lens64: Lens) -> None:
    """The second prompt equals its corrupted prompt, so no node is a candidate there; its
    activations still count in the mean (they used to be left out of a sum divided by 2)."""
    other = "w2 w5 w3 w9 w2 w7 w4"
    prompts = PromptSet.build(lens64, [CLEAN, other], [CORRUPT, other], answers=[[5, 9]] * 2)
    graph = attribute(lens64, prompts, METRIC, method="direct", max_nodes=30, progress=False)
    run = lens64.run(prompts.clean)
    checked = 0
    for node in graph.nodes.values():
        if node.kind == "feature" and node.pos is not None:
            acts = run.features[node.site][:, node.pos, node.index]
            assert node.activation == pytest.approx(float(acts.mean()), abs=1e-10)
            checked += int(float(acts[1]) != 0)
    assert checked > 0  # some node is active on the prompt where it is not a candidate


def test_ig_with_a_node_activation_metric(lens64: Lens, model64: Any) -> None:
    """IG to a feature's activation runs (it raised: sites after the target are unused), and the
    scores of one site add up to the exact effect of zeroing that whole site (completeness;
    the midpoint rule converges like 1/steps here: the activation functions have kinks)."""
    prompts = PromptSet.build(lens64, CLEAN, answers=[[5, 9]])
    (state,) = prompt_states(lens64, prompts, "zero")
    target_site, early = "blocks.1.hook_resid_post", "blocks.0.hook_resid_post"
    active = torch.nonzero(state.clean.features[target_site][0, -1] > 0)[0, 0]
    metric = NodeActivation(feature(target_site, int(active), prompts.n_pos - 1))
    graph = attribute(
        lens64, prompts, metric, method="ig", max_nodes=5, edges=False, progress=False
    )
    assert len(graph.nodes) > 1
    nodes = [n for n in candidate_nodes(lens64, state, "keep") if n.site == early]
    scores = integrated_gradient_node_effects(lens64, state, metric, nodes, steps=256)
    hooks = splice_reference_hooks(
        lens64, early, lambda f, e: (torch.zeros_like(f), torch.zeros_like(e)), {}
    )
    patched = read_feature(model64, lens64, prompts.clean, hooks, target_site)[0, -1, active]
    exact = float(state.clean.features[target_site][0, -1, active] - patched)
    assert sum(scores.values()) == pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "ig", "ig_steps": 0}, "ig_steps"),
        ({"method": "ig", "ig_steps": 2.5}, "ig_steps"),
        ({"method": "exact", "batch_size": 0}, "batch_size"),
        ({"method": "direct", "mlp": "sideways"}, "mlp"),
        ({"max_nodes": 0}, "max_nodes"),
        ({"node_threshold": float("nan")}, "node_threshold"),
        ({"baseline": "sideways"}, "unknown baseline"),
    ],
)
def test_invalid_method_settings_are_refused(
    lens64: Lens, prompts64: PromptSet, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        attribute(lens64, prompts64, METRIC, progress=False, **options)


def test_cli_refuses_zero_ig_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["attribute", "--prompt", "when anna and adam went", "--correct", "anna", "--method", "ig",
            "--ig-steps", "0", "--out", str(tmp_path / "g.json")]  # fmt: skip
    try:
        code = main(args)
    except SystemExit as exc:  # refused while parsing the arguments, before any model loads
        code = exc.code
    assert code not in (0, None)
    err = capsys.readouterr().err
    assert "--ig-steps" in err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert not (tmp_path / "g.json").exists()


def test_direction_nodes_in_faithfulness_and_clustering(model64: Any) -> None:
    """A graph with direction nodes (site `<hook>:directions`, ids containing ':') evaluates and
    clusters; the circuit read from the graph is its node table's nodes (ids are not parsed)."""
    vectors = torch.randn(2, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    directions = Directions(vectors, "blocks.0.hook_attn_out", labels=["a", "b"])
    lens = Lens(model64, [*full_dictionaries(model64, dtype=torch.float64), directions])
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    graph = attribute(
        lens, prompts, METRIC, method="direct", positions="sum", max_nodes=200, progress=False
    )
    site = directions.name
    direction_nodes = [n for n in graph.table.nodes if n.site == site]
    assert direction_nodes
    by_graph = faithfulness(lens, prompts, METRIC, graph, ablation="zero")
    by_hand = [n.node for n in graph.nodes.values() if n.kind in ("feature", "error")]
    assert circuit_nodes(graph) == by_hand
    assert by_graph.circuit == faithfulness(lens, prompts, METRIC, by_hand, ablation="zero").circuit
    profiles = connectivity_profiles([graph])
    chosen = [n for n in profiles.nodes if n.site in (site, "blocks.0.hook_attn_out")]
    labels = decoder_clusters(lens, chosen, 2)
    assert set(labels) == {n.id for n in chosen}


def test_overlapping_directions_leave_sae_circuit_scores_unchanged(
    lens64: Lens, prompts64: PromptSet, model64: Any
) -> None:
    """Directions spliced after the gated SAE at the same hook: an SAE circuit's faithfulness is
    what it is on the Lens without the directions (the directions' error term used to overwrite
    the ablated stream and zero every SAE circuit's score); with every direction feature in the
    circuit too (and the directions' error never ablated), the directions splice is the identity."""
    hook = "blocks.1.hook_resid_post"
    vectors = torch.randn(3, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    directions = Directions(vectors, hook)
    lens = Lens(model64, [*full_dictionaries(model64, dtype=torch.float64), directions])
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    graph = attribute(
        lens64, prompts64, METRIC, method="attribution", max_nodes=12, edges=False, progress=False
    )
    circuit = circuit_nodes(graph)
    all_directions = [
        feature(directions.name, i, p) for i in range(3) for p in range(prompts.n_pos)
    ]
    for ablation in ("zero", "corrupted"):
        plain = faithfulness(lens64, prompts64, METRIC, circuit, ablation=ablation)
        shared = faithfulness(lens, prompts, METRIC, circuit, ablation=ablation)
        viewed = faithfulness(lens, prompts, METRIC, circuit + all_directions, ablation=ablation)
        for result in (shared, viewed):
            assert result.circuit == pytest.approx(plain.circuit, abs=1e-9)
            assert result.empty == pytest.approx(plain.empty, abs=1e-9)
        assert abs(plain.score) > 0


def test_registered_methods_drive_attribute(lens64: Lens, prompts64: PromptSet) -> None:
    """A method registered under a new name is what `attribute` runs: one that doubles attribution
    patching's node effects and edges gives exactly twice its graph."""
    from feature_lens.attribution import METHOD_REGISTRY, get_method, register_method
    from feature_lens.attribution.methods import AttributionPatching

    class Doubled(AttributionPatching):
        name = "doubled"

        def node_effects(self, *args: Any) -> dict[Any, float]:
            return {n: 2 * v for n, v in super().node_effects(*args).items()}

        def edges(self, *args: Any) -> torch.Tensor:
            return 2 * super().edges(*args)

    register_method(Doubled())  # type: ignore[arg-type]
    try:
        assert isinstance(get_method("doubled"), Doubled)
        base = attribute(
            lens64, prompts64, METRIC, method="attribution", max_nodes=8, progress=False
        )
        doubled = attribute(
            lens64, prompts64, METRIC, method="doubled", max_nodes=8, progress=False
        )
    finally:
        del METHOD_REGISTRY["doubled"]
    assert list(doubled.nodes) == list(base.nodes)
    torch.testing.assert_close(doubled.edge_weight, 2 * base.edge_weight, rtol=0, atol=1e-12)
    with pytest.raises(InputError, match="unknown method 'doubled'"):
        attribute(lens64, prompts64, METRIC, method="doubled", progress=False)


def test_prompt_states_and_from_task(lens64: Lens, prompts64: PromptSet) -> None:
    """`prompt_states` rows are the per-prompt clean and corrupted runs; `PromptSet.from_task` is
    the task's pairs with [correct, wrong] answers."""
    from feature_lens.zoo import task_prompts

    two = PromptSet.build(lens64, [CLEAN, CLEAN], [CORRUPT, CLEAN], answers=[[5, 9], [9, 5]])
    states = prompt_states(lens64, two)
    for i, state in enumerate(states):
        clean = lens64.run(two.clean[i : i + 1])
        corrupted = lens64.run(two.corrupted[i : i + 1])  # type: ignore[index]
        for site in lens64.sites:
            torch.testing.assert_close(state.clean.features[site], clean.features[site])
            torch.testing.assert_close(state.base.errors[site], corrupted.errors[site])
        assert state.answers is not None
        assert state.answers.tolist() == [two.answers[i].tolist()]  # type: ignore[index]
    zoo = Lens.load()
    task = PromptSet.from_task(zoo, "ioi", 3, seed=2)
    pairs = task_prompts("ioi", 3, seed=2)
    assert torch.equal(task.clean.cpu(), pairs.clean)
    assert torch.equal(task.corrupted.cpu(), pairs.corrupted)  # type: ignore[union-attr]
    assert task.answers.tolist() == [
        [c, w] for c, w in zip(pairs.correct.tolist(), pairs.wrong.tolist(), strict=True)
    ]  # type: ignore[union-attr]
