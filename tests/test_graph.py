"""The tensor graph against brute-force dictionary computations, storage v2 and v1, and refusal of
malformed files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import networkx as nx
import pytest
import torch

from feature_lens.errors import FeatureLensError, InputError, LoadingError
from feature_lens.graph import AttributionGraph, Node, NodeRecord
from feature_lens.graph.node import METRIC_NODE, error, feature, token
from feature_lens.graph.storage import tensor_path


def random_graph(n_features: int = 30, density: float = 0.3, seed: int = 0) -> AttributionGraph:
    """Tokens -> features over 3 sites -> metric, random signed weights on forward edges."""
    rng = random.Random(seed)
    records = [NodeRecord(token(p), layer=-1, order=0, activation=1.0) for p in range(3)]
    for i in range(n_features):
        site = i % 3
        records.append(
            NodeRecord(
                feature(f"blocks.{site}.hook_resid_post", i, rng.randrange(4)),
                layer=site,
                order=site + 1,
                activation=rng.random(),
                effect=rng.uniform(-1, 1),
            )
        )
    records.append(NodeRecord(error("blocks.1.hook_resid_post", 2), layer=1, order=2))
    records.append(NodeRecord(METRIC_NODE, layer=3, order=99, effect=0.5, label="m"))
    edges: dict[tuple[str, str], float] = {}
    for s in records:
        for t in records:
            if t.kind in ("feature", "logit") and s.order < t.order and rng.random() < density:
                edges[(s.id, t.id)] = rng.uniform(-2, 2)
    return AttributionGraph.from_records("direct", "m", records, edges, {"x": 1}, [["a", "b"]])


def brute_influence(graph: AttributionGraph) -> dict[str, float]:
    """Sum over all paths to the metric of products of normalised |weights| (recursion)."""
    incoming: dict[str, list[tuple[str, float]]] = {i: [] for i in graph.nodes}
    for (s, t), w in graph.edges.items():
        incoming[t].append((s, abs(w)))
    out = dict.fromkeys(graph.nodes, 0.0)

    def push(node: str, mass: float) -> None:
        total = sum(w for _, w in incoming[node])
        for source, w in incoming[node]:
            out[source] += mass * w / total
            push(source, mass * w / total)

    push(graph.metric_node.id, 1.0)
    out[graph.metric_node.id] = 1.0
    return out


def test_views_and_queries_match_the_edges() -> None:
    graph = random_graph()
    assert graph.n_edges == len(graph.edges) > 0
    for node_id in list(graph.nodes)[:10]:
        up = {(r.id, w) for r, w in graph.upstream(node_id)}
        assert up == {(s, w) for (s, t), w in graph.edges.items() if t == node_id}
        down = {(r.id, w) for r, w in graph.downstream(node_id)}
        assert down == {(t, w) for (s, t), w in graph.edges.items() if s == node_id}
    dense = graph.dense_adjacency()
    for (s, t), w in graph.edges.items():
        assert dense[graph.table.row_of[t], graph.table.row_of[s]] == w
    nxg = graph.to_networkx()
    assert nxg.number_of_edges() == graph.n_edges
    assert nxg.number_of_nodes() == len(graph.nodes)
    assert nx.is_directed_acyclic_graph(nxg)


def test_influence_matches_the_path_sum() -> None:
    graph = random_graph(n_features=18, density=0.35, seed=2)
    assert graph.influence() == pytest.approx(brute_influence(graph), rel=1e-12)


def test_pruning_matches_brute_force() -> None:
    graph = random_graph(seed=3)
    metric = graph.metric_node.id
    ranked = sorted(
        (n for n in graph.nodes.values() if n.kind != "logit"), key=lambda n: -abs(n.effect)
    )
    top = graph.prune_topk(7)
    assert set(top.nodes) == {n.id for n in ranked[:7]} | {metric}
    assert dict(top.edges) == {
        (s, t): w for (s, t), w in graph.edges.items() if s in top.nodes and t in top.nodes
    }
    cut = graph.prune_threshold(node=0.3, edge=0.5)
    keep = {i for i, n in graph.nodes.items() if abs(n.effect) >= 0.3} | {metric}
    assert set(cut.nodes) == keep
    assert dict(cut.edges) == {
        (s, t): w for (s, t), w in graph.edges.items() if s in keep and t in keep and abs(w) >= 0.5
    }
    scores = {i: s for i, s in brute_influence(graph).items() if i != metric}
    total, running, expected = sum(scores.values()), 0.0, set()
    for node_id, score in sorted(scores.items(), key=lambda kv: -kv[1]):
        if running >= 0.6 * total:
            break
        expected.add(node_id)
        running += score
    assert set(graph.prune_influence(0.6).nodes) == expected | {metric}


def test_v2_round_trip_coo_and_dense(tmp_path: Path) -> None:
    sparse = random_graph(n_features=60, density=0.05, seed=4)
    dense = random_graph(n_features=45, density=1.0, seed=5)
    for name, graph, layout in (("s", sparse, "coo"), ("d", dense, "dense")):
        path = graph.save(tmp_path / f"{name}.json")
        assert json.loads(path.read_text())["tensors"]["adjacency"] == layout
        loaded = AttributionGraph.load(path)
        assert loaded.nodes == graph.nodes
        assert dict(loaded.edges) == dict(graph.edges)
        assert (loaded.settings, loaded.prompts, loaded.method) == (
            graph.settings,
            graph.prompts,
            graph.method,
        )


def test_medium_graph_saves_and_loads(tmp_path: Path) -> None:
    """2,000 nodes and 200,000 edges (the benchmark measures 10,000 and 10^6)."""
    n = 2000
    nodes = [feature(f"blocks.{i % 4}.hook_resid_post", i, 0) for i in range(n - 1)]
    table_nodes = [*nodes, METRIC_NODE]
    from feature_lens.graph import NodeTable

    table = NodeTable.from_nodes(
        table_nodes,
        layer=[i % 4 for i in range(n - 1)] + [4],
        order=[i % 4 for i in range(n - 1)] + [9],
        effect=torch.randn(n, dtype=torch.float64),
    )
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(0, n, (2, 200_000), generator=generator)
    graph = AttributionGraph(
        "direct", "m", table, index, torch.randn(200_000, dtype=torch.float64)
    ).coalesced()
    loaded = AttributionGraph.load(graph.save(tmp_path / "big.json"))
    assert torch.equal(loaded.edge_index, graph.edge_index)
    assert torch.equal(loaded.edge_weight, graph.edge_weight)
    assert loaded.table.ids == graph.table.ids


def test_direction_sites_round_trip(tmp_path: Path) -> None:
    """Site names with ':' (directions) keep their identity: ids are never split."""
    site = "blocks.0.hook_resid_post:directions"
    records = [
        NodeRecord(feature(site, 1, 2), order=1, effect=1.0),
        NodeRecord(error(site, 2), order=1, effect=0.5),
        NodeRecord(METRIC_NODE, order=9),
    ]
    graph = AttributionGraph.from_records(
        "direct", "m", records, {(records[0].id, "logit:metric:*"): 1.0}
    )
    loaded = AttributionGraph.load(graph.save(tmp_path / "g.json"))
    assert [n.node for n in loaded.nodes.values()] == [r.node for r in records]


def test_non_finite_values_are_refused_at_save(tmp_path: Path) -> None:
    records = [NodeRecord(feature("s", 0), effect=math.nan), NodeRecord(METRIC_NODE, order=1)]
    graph = AttributionGraph.from_records("direct", "m", records)
    with pytest.raises(FeatureLensError, match="has effect nan"):
        graph.save(tmp_path / "g.json")
    graph = AttributionGraph.from_records(
        "direct", "m", [NodeRecord(METRIC_NODE)], settings={"metric_baseline": math.inf}
    )
    with pytest.raises(FeatureLensError, match="metric_baseline is inf"):
        graph.save(tmp_path / "g.json")
    assert list(tmp_path.iterdir()) == []


def _v1(nodes: list[dict[str, object]], edges: list[dict[str, object]]) -> dict[str, object]:
    return {
        "format": "feature-lens-graph",
        "version": 1,
        "method": "exact",
        "metric": "m",
        "nodes": nodes,
        "edges": edges,
    }


V1_NODES: list[dict[str, object]] = [
    {"id": "t", "kind": "token", "site": "embed", "layer": -1, "order": 0, "pos": 1},
    {
        "id": "f",
        "kind": "feature",
        "site": "a:directions",
        "layer": 0,
        "order": 1,
        "pos": 1,
        "index": 3,
        "effect": 0.5,
    },
    {"id": "m", "kind": "logit", "site": "metric", "layer": 1, "order": 9, "effect": 1.0},
]


def test_version_1_files_load(tmp_path: Path) -> None:
    path = tmp_path / "v1.json"
    edges = [
        {"source": "t", "target": "f", "weight": 2.0},
        {"source": "f", "target": "m", "weight": 0.5},
    ]
    path.write_text(json.dumps(_v1(V1_NODES, edges)))
    graph = AttributionGraph.load(path)
    f = Node("feature", "a:directions", 1, 3)
    assert graph.nodes[f.id].effect == 0.5
    assert dict(graph.edges) == {(token(1).id, f.id): 2.0, (f.id, METRIC_NODE.id): 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["edges"].append({"source": "t", "target": "gone", "weight": 1.0}),
            "missing node 'gone'",
        ),
        (lambda d: d["nodes"].pop(), "exactly one metric node"),
        (lambda d: d["nodes"].append(dict(V1_NODES[1], id="g")), "appears twice"),
        (lambda d: d["nodes"][0].update(pos=-1), "nodes.0.pos"),
        (lambda d: d["nodes"][1].update(effect=float("nan")), "non-finite number NaN"),
        (lambda d: d.update(settings={"deep": json.loads("[" * 100 + "]" * 100)}), None),
    ],
)
def test_malformed_version_1_files_fail_in_one_line(
    tmp_path: Path, change: object, message: str | None
) -> None:
    data = _v1([dict(n) for n in V1_NODES], [])
    change(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    if message is None:  # moderately deep settings are fine
        AttributionGraph.load(path)
        return
    with pytest.raises(LoadingError, match=message) as caught:
        AttributionGraph.load(path)
    assert "\n" not in str(caught.value)


def test_deep_nesting_and_broken_pairs_fail_in_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(
        '{"format": "feature-lens-graph", "settings": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(LoadingError, match="nested too deeply"):
        AttributionGraph.load(deep)
    graph = random_graph(n_features=5)
    path = graph.save(tmp_path / "g.json")
    other = random_graph(n_features=6).save(tmp_path / "h.json")
    tensor_path(path).write_bytes(tensor_path(other).read_bytes())
    with pytest.raises(LoadingError, match="does not belong to it"):
        AttributionGraph.load(path)
    tensor_path(path).unlink()
    with pytest.raises(LoadingError, match="is missing"):
        AttributionGraph.load(path)
    data = json.loads(other.read_text())
    data["tensors"]["file"] = "../h.safetensors"
    other.write_text(json.dumps(data))
    with pytest.raises(LoadingError, match="plain file name"):
        AttributionGraph.load(other)


def test_constructor_refuses_bad_tables() -> None:
    with pytest.raises(InputError, match="appears twice"):
        AttributionGraph.from_records(
            "direct",
            "m",
            [NodeRecord(feature("s", 1)), NodeRecord(feature("s", 1)), NodeRecord(METRIC_NODE)],
        )
    with pytest.raises(InputError, match="position must be >= 0"):
        feature("s", 1, -1)
