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


def test_panel_neighbours_across_layers_match_an_independent_ablation(
    serve_lens: Lens, graph: AttributionGraph
) -> None:
    """The strongest downstream link on the corpus: zero the feature at every position with
    SAE-Lens hooks on its top prompts and measure the later feature's summed activation."""
    from feature_lens.serve.intervene import Target
    from tests.serve.test_intervene import reference_hooks

    corpus = dataset_prompts(24)
    panels = FeaturePanels(serve_lens, lambda: corpus)
    node = next(
        n for n in graph.features() if n.site != serve_lens.sites[-1] and n.index is not None
    )
    assert node.index is not None
    data = panels.panel(FeatureId(node.site, node.index), graph, node.id)
    assert data["acrossUp"]
    assert data["acrossDown"]
    link = data["acrossDown"][0]
    totals = [
        float(serve_lens.run(text).features[node.site][0, :, node.index].sum()) for text in corpus
    ]
    top = sorted(range(len(corpus)), key=lambda i: -totals[i])[: data["acrossPrompts"]]
    hooks = reference_hooks(serve_lens, [Target(site=node.site, index=node.index)], "zero", 0.0)
    later = serve_lens.dictionary(link["site"]).sae
    hook_in = later.cfg.metadata.hook_name
    changes = []
    for i in top:
        tokens = serve_lens.to_tokens(corpus[i])
        with torch.no_grad():
            _, clean = serve_lens.model.run_with_cache(tokens, names_filter=[hook_in])
            store: dict[str, torch.Tensor] = {}

            def grab(act: torch.Tensor, hook: Any, store: dict[str, torch.Tensor] = store) -> None:
                store["x"] = act

            serve_lens.model.run_with_hooks(tokens, fwd_hooks=[*hooks, (hook_in, grab)])
            before = later.encode(clean[hook_in])[0, :, link["index"]].sum()
            after = later.encode(store["x"])[0, :, link["index"]].sum()
        # An edge weight is the source's effect: the target with it minus without it.
        changes.append(float(before - after))
    assert link["weight"] == pytest.approx(sum(changes) / len(changes), rel=1e-4, abs=1e-5)
