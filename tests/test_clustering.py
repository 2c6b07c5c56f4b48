"""Feature clustering by connectivity: planted groups in a constructed graph, and collapsing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from feature_lens import InputError, Lens
from feature_lens.attribution import METRIC_NODE, feature, token
from feature_lens.clustering import (
    adjusted_rand_index,
    annotate,
    cluster_profiles,
    collapse,
    connectivity_profiles,
    decoder_clusters,
)
from feature_lens.graph import AttributionGraph, Node, NodeRecord
from tests.conftest import full_dictionaries

SITE = "blocks.0.hook_resid_post"


def _node(node: Node, order: int = 1, effect: float = 0.0) -> NodeRecord:
    return NodeRecord(node, layer=0, order=order, effect=effect, activation=1.0)


def planted_graph(
    n_groups: int = 3, per_group: int = 5, seed: int = 0
) -> tuple[AttributionGraph, dict[str, int]]:
    """Middle features of group g read from input features of group g and write to output features
    of group g (strong, positive, noisy weights), with weak cross-group noise."""
    rng = np.random.default_rng(seed)
    nodes = {METRIC_NODE.id: _node(METRIC_NODE, 99)}
    truth: dict[str, int] = {}
    edges: dict[tuple[str, str], float] = {}
    inputs = {g: [token(g * 3 + k).id for k in range(3)] for g in range(n_groups)}
    outputs = {
        g: [feature("blocks.1.hook_resid_post", g * 3 + k).id for k in range(3)]
        for g in range(n_groups)
    }
    for g in range(n_groups):
        for k in range(3):
            nodes[inputs[g][k]] = _node(token(g * 3 + k), 0)
            nodes[outputs[g][k]] = _node(feature("blocks.1.hook_resid_post", g * 3 + k), order=2)
    all_inputs = [i for group in inputs.values() for i in group]
    all_outputs = [o for group in outputs.values() for o in group]
    for g in range(n_groups):
        for k in range(per_group):
            middle = feature(SITE, g * per_group + k).id
            nodes[middle] = _node(feature(SITE, g * per_group + k), effect=float(rng.normal()))
            truth[middle] = g
            for source in all_inputs:
                strong = source in inputs[g]
                edges[(source, middle)] = (
                    float(rng.uniform(1, 2)) if strong else float(rng.normal(0, 0.05))
                )
            for target in all_outputs:
                strong = target in outputs[g]
                edges[(middle, target)] = (
                    float(rng.uniform(1, 2)) if strong else float(rng.normal(0, 0.05))
                )
    return AttributionGraph.from_records("direct", "m", nodes, edges), truth


def test_profiles_recover_planted_groups() -> None:
    graph, truth = planted_graph()
    profiles = connectivity_profiles([graph], include_metric=False)
    middle = [i for i in profiles.node_ids if i in truth]
    assert len(middle) == 15
    clusters = cluster_profiles(profiles, n_clusters=3 + 3)  # middles + the 3 output groups
    assert adjusted_rand_index({i: clusters[i] for i in middle}, truth) == pytest.approx(1.0)


def test_decoder_baseline_is_near_chance_when_decoders_are_unrelated(model: Any) -> None:
    lens = Lens(model, full_dictionaries(model))
    graph, truth = planted_graph()
    middle = [n for n in graph.table.nodes if n.id in truth]
    baseline = decoder_clusters(lens, middle, 3)
    assert adjusted_rand_index(baseline, truth) < 0.5
    with pytest.raises(InputError, match="n_clusters"):
        decoder_clusters(lens, middle, 99)


def test_profiles_columns_are_edge_weights() -> None:
    graph, _ = planted_graph(n_groups=1, per_group=2)
    profiles = connectivity_profiles([graph, graph], include_activation=True)
    row = profiles.matrix[profiles.node_ids.index(f"feature:{SITE}:*:0")]
    column = profiles.columns.index("in:token:embed:0")
    assert row[column] == pytest.approx(2 * graph.edges[("token:embed:0", f"feature:{SITE}:*:0")])
    assert profiles.columns.count("act#1") == 1


def test_annotate_and_collapse_preserve_totals() -> None:
    graph, truth = planted_graph()
    annotated = annotate(graph, truth)
    assert annotated.nodes[f"feature:{SITE}:*:0"].cluster == 0
    assert annotated.nodes["logit:metric:*"].cluster is None
    collapsed = collapse(graph, truth)
    assert {f"cluster:{g}" for g in range(3)} <= set(collapsed.nodes)
    for g in range(3):
        members = [i for i, c in truth.items() if c == g]
        assert collapsed.nodes[f"cluster:{g}"].effect == pytest.approx(
            sum(graph.nodes[i].effect for i in members)
        )
        source = "token:embed:0"
        assert collapsed.edges[(source, f"cluster:{g}")] == pytest.approx(
            sum(graph.edges[(source, i)] for i in members)
        )
    kept_total = sum(collapsed.edges.values())
    assert kept_total == pytest.approx(
        sum(graph.edges.values())
    )  # no intra-cluster edges in this graph
