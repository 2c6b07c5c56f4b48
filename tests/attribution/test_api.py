"""`attribute` end to end, the graph type (JSON, pruning, influence), faithfulness, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import InputError, Lens, LoadingError, OutputExistsError
from feature_lens.attribution import (
    METHODS,
    METRIC_NODE,
    CallableMetric,
    LogitDiff,
    LogProb,
    NodeActivation,
    PromptSet,
    attribute,
    candidate_nodes,
    exact_node_effects,
    faithfulness,
    feature,
)
from feature_lens.graph import AttributionGraph, GraphFile, NodeRecord
from tests.attribution.conftest import CLEAN, CORRUPT, make_state

METRIC = LogitDiff()


@pytest.mark.parametrize("method", METHODS)
def test_attribute_builds_a_graph(lens64: Lens, prompts64: PromptSet, method: str) -> None:
    graph = attribute(lens64, prompts64, METRIC, method=method, max_nodes=12, progress=False)  # type: ignore[arg-type]
    assert graph.method == method
    assert graph.settings["baseline"] == "corrupted"
    kept = [n for n in graph.nodes.values() if n.kind != "logit"]
    assert 0 < len(kept) <= 12
    # Every kept node has an edge to the metric equal to its effect; edges go forward only.
    for node in kept:
        assert graph.edges[(node.id, graph.metric_node.id)] == node.effect
    for (source, target), _ in graph.edges.items():
        assert graph.nodes[source].order < graph.nodes[target].order
    assert graph.prompts[0][0] == "<bos>"
    assert graph.metric_node.activation == pytest.approx(graph.settings["metric_clean"])


def test_exact_graph_effects_are_the_exact_effects(lens64: Lens, prompts64: PromptSet) -> None:
    graph = attribute(
        lens64, prompts64, METRIC, method="exact", max_nodes=10, edges=False, progress=False
    )
    state = make_state(lens64, prompts64)
    nodes = [n.node for n in graph.nodes.values() if n.kind != "logit"]
    expected = exact_node_effects(lens64, state, LogitDiff(correct=5, wrong=9), nodes)
    for node in nodes:
        assert graph.nodes[node.id].effect == pytest.approx(expected[node], abs=1e-10)
    # Kept nodes are the strongest: nothing left out beats the weakest kept.
    all_effects = exact_node_effects(
        lens64, state, LogitDiff(correct=5, wrong=9), candidate_nodes(lens64, state, "keep")
    )
    weakest = min(abs(graph.nodes[n.id].effect) for n in nodes)
    assert sum(abs(v) > weakest + 1e-12 for v in all_effects.values()) <= len(nodes)


def test_mean_over_prompts(lens64: Lens) -> None:
    two = PromptSet.build(
        lens64,
        [CLEAN, "w2 w5 w3 w9 w2 w7 w4"],
        [CORRUPT, "w2 w5 w8 w9 w2 w6 w4"],
        answers=[[5, 9], [5, 9]],
    )
    both = attribute(
        lens64,
        two,
        METRIC,
        method="attribution",
        max_nodes=500,
        edges=False,
        positions="sum",
        progress=False,
    )
    singles = [
        attribute(
            lens64,
            PromptSet.build(lens64, c, k, answers=[[5, 9]]),
            METRIC,
            method="attribution",
            max_nodes=500,
            edges=False,
            positions="sum",
            progress=False,
        )
        for c, k in [(CLEAN, CORRUPT), ("w2 w5 w3 w9 w2 w7 w4", "w2 w5 w8 w9 w2 w6 w4")]
    ]
    for node_id, node in both.nodes.items():
        if node.kind == "logit":
            continue
        expected = sum(g.nodes[node_id].effect if node_id in g.nodes else 0.0 for g in singles) / 2
        assert node.effect == pytest.approx(expected, abs=1e-10)


def test_graph_json_round_trip_and_atomic_save(
    lens64: Lens, prompts64: PromptSet, tmp_path: Path
) -> None:
    graph = attribute(lens64, prompts64, METRIC, method="direct", max_nodes=8, progress=False)
    path = graph.save(tmp_path / "g.json")
    record = GraphFile.model_validate(json.loads(path.read_text()))
    assert record.format == "feature-lens-graph"
    assert record.version == 2
    loaded = AttributionGraph.load(path)
    assert loaded.nodes == graph.nodes
    assert loaded.edges == pytest.approx(graph.edges)
    assert loaded.settings["mlp"] == "stop"
    with pytest.raises(OutputExistsError):
        graph.save(path)
    graph.save(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]  # no temps
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(LoadingError, match="not a feature-lens graph"):
        AttributionGraph.load(tmp_path / "bad.json")
    assert loaded.to_networkx().number_of_edges() == len(graph.edges)


def test_pruning(lens64: Lens, prompts64: PromptSet) -> None:
    graph = attribute(lens64, prompts64, METRIC, method="attribution", max_nodes=16, progress=False)
    top = graph.prune_topk(3)
    assert len(top.nodes) == 4
    strongest = sorted(
        (n for n in graph.nodes.values() if n.kind != "logit"), key=lambda n: -abs(n.effect)
    )[:3]
    assert {n.id for n in strongest} | {graph.metric_node.id} == set(top.nodes)
    cut = sorted(abs(n.effect) for n in graph.nodes.values() if n.kind != "logit")[8]
    thresholded = graph.prune_threshold(node=cut, edge=1e-3)
    assert all(abs(n.effect) >= cut for n in thresholded.nodes.values() if n.kind != "logit")
    assert all(abs(w) >= 1e-3 for w in thresholded.edges.values())
    assert set(graph.prune_influence(1.0).nodes) == set(graph.nodes)
    assert len(graph.prune_influence(0.5).nodes) < len(graph.nodes)


def test_influence_on_a_hand_built_graph() -> None:
    """a -> b -> metric with weights 2 and 3, and c -> metric with weight 1: normalised incoming
    weights give metric <- b 3/4, c 1/4; b <- a 1; so influence a = 3/4, b = 3/4, c = 1/4."""
    a, b, c = (feature("s", i) for i in range(3))
    records = [
        NodeRecord(a),
        NodeRecord(b, order=1),
        NodeRecord(c),
        NodeRecord(METRIC_NODE, order=9),
    ]
    m = METRIC_NODE.id
    graph = AttributionGraph.from_records(
        "attribution", "m", records, {(a.id, b.id): 2.0, (b.id, m): 3.0, (c.id, m): -1.0}
    )
    assert graph.influence() == pytest.approx({a.id: 0.75, b.id: 0.75, c.id: 0.25, m: 1.0})


def test_faithfulness_against_hand_written_ablation(
    lens64: Lens, prompts64: PromptSet, model64: Any
) -> None:
    graph = attribute(
        lens64,
        prompts64,
        METRIC,
        method="exact",
        max_nodes=10,
        edges=False,
        progress=False,
        baseline="zero",
    )
    everything = list(candidate_nodes(lens64, make_state(lens64, prompts64, "zero"), "keep"))
    full = faithfulness(lens64, prompts64, METRIC, everything, ablation="zero")
    assert full.score == pytest.approx(1.0, abs=1e-9)
    assert faithfulness(lens64, prompts64, METRIC, [], ablation="zero").score == pytest.approx(
        0.0, abs=1e-12
    )
    result = faithfulness(lens64, prompts64, METRIC, graph, ablation="zero")
    keep = [n.node for n in graph.nodes.values() if n.kind in ("feature", "error")]
    # Independent: raw hooks splicing every SAE with out-of-circuit nodes zeroed.
    hooks: list[tuple[str, Any]] = []
    for site, dictionary in lens64.dictionaries.items():
        store: dict[str, torch.Tensor] = {}
        if dictionary.hook_in != dictionary.hook_out:
            hooks.append(
                (
                    dictionary.hook_in,
                    lambda act, hook, store=store: store.__setitem__("x", act) or act,
                )
            )

        def splice(
            act: torch.Tensor,
            hook: Any,
            sae: Any = dictionary.sae,
            site: str = site,
            store: dict[str, torch.Tensor] = store,
        ) -> torch.Tensor:
            f = sae.encode(store.get("x", act))
            err = act - sae.decode(f)
            f_kept, err_kept = torch.zeros_like(f), torch.zeros_like(err)
            for node in keep:
                if node.site == site and node.kind == "feature":
                    f_kept[0, node.pos, node.index] = f[0, node.pos, node.index]
                elif node.site == site and node.kind == "error":
                    err_kept[0, node.pos] = err[0, node.pos]
            return sae.decode(f_kept) + err_kept

        hooks.append((site, splice))
    with torch.no_grad():
        logits = model64.run_with_hooks(prompts64.clean, fwd_hooks=hooks)
    assert result.circuit == pytest.approx(float(logits[0, -1, 5] - logits[0, -1, 9]), abs=1e-9)
    assert abs(result.score) > 0


def test_node_activation_metric_and_logprob(lens64: Lens, prompts64: PromptSet) -> None:
    state = make_state(lens64, prompts64)
    target = next(
        n
        for n in candidate_nodes(lens64, state, "keep")
        if n.site == "blocks.1.hook_resid_post" and n.kind == "feature"
    )
    graph = attribute(
        lens64,
        prompts64,
        NodeActivation(target),
        method="attribution",
        max_nodes=5,
        edges=False,
        progress=False,
    )
    assert all(
        lens64.site_order(n.site) <= lens64.site_order(target.site)
        for n in graph.nodes.values()
        if n.kind in ("feature", "error")
    )
    assert (
        attribute(
            lens64, prompts64, LogProb(), method="exact", max_nodes=3, edges=False, progress=False
        ).metric
        == "log_prob"
    )


def test_bad_input(lens64: Lens, prompts64: PromptSet) -> None:
    with pytest.raises(InputError, match="unknown method"):
        attribute(lens64, prompts64, METRIC, method="magic", progress=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="same token length"):
        PromptSet.build(lens64, CLEAN, "w1 w2")
    with pytest.raises(InputError, match="one number per prompt"):
        attribute(
            lens64, prompts64, CallableMetric(lambda logits, answers: logits[:, -1]), progress=False
        )
    with pytest.raises(InputError, match="no dictionary at site"):
        attribute(
            lens64,
            prompts64,
            NodeActivation(feature("blocks.7.hook_resid_post", 1, 2)),
            progress=False,
        )
    with pytest.raises(InputError, match="out of range"):
        attribute(
            lens64,
            prompts64,
            NodeActivation(feature("blocks.1.hook_resid_post", 10_000, 2)),
            progress=False,
        )
    with pytest.raises(InputError, match="prompt 0 is empty"):
        PromptSet.build(lens64, "")
    with pytest.raises(InputError, match="context is 12 tokens"):
        PromptSet.build(lens64, " ".join(["w1"] * 30))
    with pytest.raises(InputError, match="needs corrupted prompts"):
        attribute(
            lens64,
            PromptSet.build(lens64, CLEAN, answers=[[5, 9]]),
            METRIC,
            baseline="corrupted",
            progress=False,
        )
    with pytest.raises(InputError, match="correct token"):
        attribute(lens64, PromptSet.build(lens64, CLEAN, CORRUPT), METRIC, progress=False)
    with pytest.raises(InputError, match="answer token ids"):
        PromptSet.build(lens64, CLEAN, answers=[[5, 99]])


def test_corrupted_ablation_faithfulness(lens64: Lens, prompts64: PromptSet) -> None:
    """With the corrupted baseline, the empty circuit gives (about) the corrupted metric and the
    full candidate set the clean one."""
    from feature_lens.attribution import faithfulness as faith

    state = make_state(lens64, prompts64, "corrupted")
    everything = candidate_nodes(lens64, state, "keep")
    full = faith(lens64, prompts64, METRIC, everything, ablation="corrupted")
    assert full.score == pytest.approx(1.0, abs=1e-9)
    with torch.no_grad():
        corrupted = METRIC(lens64.forward(prompts64.corrupted), prompts64.answers)  # type: ignore[arg-type]
    empty = faith(lens64, prompts64, METRIC, [], ablation="corrupted")
    # Features are recomputed from the ablated stream, so "empty" is the corrupted run exactly.
    assert empty.empty == pytest.approx(float(corrupted[0]), abs=1e-9)
    with pytest.raises(InputError, match="ablation must be"):
        faith(lens64, prompts64, METRIC, [], ablation="sideways")  # type: ignore[arg-type]
