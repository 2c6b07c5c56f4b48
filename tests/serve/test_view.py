"""The view model against independent computations: pruning by `rank` keeps what
`prune_influence` keeps, edge influences add up to node influences, layout keys are consistent,
and the feature panel's numbers match a direct recomputation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import LogProb, PromptSet, attribute
from feature_lens.dashboard.data import FeatureId
from feature_lens.graph import AttributionGraph
from feature_lens.serve.features import FeaturePanels
from feature_lens.serve.view import graph_view
from tests.dashboard.conftest import XSS_PROMPT, dataset_prompts


@pytest.fixture(scope="module")
def graph(serve_lens: Lens) -> AttributionGraph:
    prompts = PromptSet.build(serve_lens, XSS_PROMPT, answers=[[3]])
    return attribute(serve_lens, prompts, LogProb(), max_nodes=20, progress=False)


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8, 0.95])
def test_rank_prunes_like_prune_influence(graph: AttributionGraph, fraction: float) -> None:
    view = graph_view(graph)
    kept = {n["id"] for n in view["nodes"] if n["kind"] != "logit" and n["rank"] < fraction}
    expected = {i for i, n in graph.prune_influence(fraction).nodes.items() if n.kind != "logit"}
    assert kept == expected


def test_edge_influence_adds_up_to_node_influence(graph: AttributionGraph) -> None:
    view = graph_view(graph)
    nodes, edges = view["nodes"], view["edges"]
    out = [0.0] * len(nodes)
    for s, value in zip(edges["s"], edges["influence"], strict=True):
        out[s] += value
    for i, node in enumerate(nodes):
        if node["kind"] != "logit":
            assert out[i] == pytest.approx(node["influence"], rel=1e-9, abs=1e-12)
    # Edges: source and target rows index the node list; weights are the graph's.
    pairs = {
        (nodes[s]["id"], nodes[t]["id"]): w
        for s, t, w in zip(edges["s"], edges["t"], edges["w"], strict=True)
    }
    assert pairs == graph.edges
    assert len(view["rows"]) == len({n.order for n in graph.nodes.values()})
    orders = [r["order"] for r in view["rows"]]
    assert orders == sorted(orders)
    assert view["rows"][-1]["label"] == graph.metric
    for node in nodes:
        assert view["rows"][node["row"]]["order"] == graph.nodes[node["id"]].order


def test_labels_prefer_the_users(graph: AttributionGraph) -> None:
    node = graph.features()[0]
    key = f"{node.site}:{node.index}"
    view = graph_view(graph, {key: "<img src=x>"})
    assert {n["label"] for n in view["nodes"] if n["feature"] == key} == {"<img src=x>"}
    tokens = {n["label"] for n in view["nodes"] if n["kind"] == "token"}
    assert tokens <= {repr(t) for t in graph.prompts[0]}


def test_feature_panel_matches_a_direct_recomputation(
    serve_lens: Lens, graph: AttributionGraph
) -> None:
    corpus = dataset_prompts(24)
    panels = FeaturePanels(serve_lens, lambda: corpus)
    node = graph.features()[0]
    assert node.index is not None
    data: dict[str, Any] = panels.panel(FeatureId(node.site, node.index), graph, node.id)
    # Top example: recompute the feature on each corpus prompt with a plain Lens run.
    best = max(
        float(serve_lens.run(text).features[node.site][0, :, node.index].max()) for text in corpus
    )
    assert data["examples"][0]["max"] == pytest.approx(best, rel=1e-5)
    assert max(data["examples"][0]["acts"]) == pytest.approx(best, abs=1e-4)
    # Top logit: the decoder row through ln_final's centring and gain and W_U.
    model = serve_lens.model
    with torch.no_grad():
        row = serve_lens.dictionary(node.site).W_dec[node.index]
        effect = ((row - row.mean()) * model.ln_final.w) @ model.W_U
    top = int(effect.argmax())
    assert data["topLogits"][0][0] == model.to_single_str_token(top)
    assert data["topLogits"][0][1] == pytest.approx(float(effect[top]), rel=1e-5)
    # Neighbours are the graph's edges.
    assert {(u["id"], u["weight"]) for u in data["upstream"]} <= {
        (s, w) for (s, t), w in graph.edges.items() if t == node.id
    }
    assert sum(data["hist"]["counts"]) > 0
