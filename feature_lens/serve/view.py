"""The one place the explorer reads an `AttributionGraph`: graph -> a JSON view model.

The browser draws what this module returns and nothing else, so when the graph's internal form
changes only this module changes. The view model:

    {"method", "metric", "metricLabel", "tokens": [prompt 0's token strings], "nPrompts",
     "rows": [{"label", "order"}],              # y axis, bottom (tokens) to top (metric)
     "nodes": [{"id", "kind", "site", "row", "pos", "index", "feature", "label", "act",
                "effect", "influence", "rank"}],
     "edges": {"s": [node row], "t": [node row], "w": [weight], "influence": [...], "rank": [...]}}

`pos` is the token position (-1: every position at once); `row` indexes `rows`; edges `s`/`t`
index `nodes`. `influence` is a
node's influence on the metric through the graph (`AttributionGraph.influence`: normalised |weight|
products over every path), and an edge's influence is its target's influence times the edge's share
of the target's incoming |weight|, so a node's influence is the sum of its outgoing edges'. `rank`
is the fraction of the total influence held by every node (edge) ranked above this one: pruning by
influence at fraction F keeps exactly the nodes with `rank < F`, as `prune_influence(F)` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from feature_lens.graph import AttributionGraph, NodeRecord
from feature_lens.graph.node import NODE_KINDS
from feature_lens.graph.table import NO_VALUE
from feature_lens.typed import float_list, int_list


def site_label(site: str, layer: int) -> str:
    """Short row label of a site: `L1 resid_post`; `tokens` for the embedding."""
    if site == "embed":
        return "tokens"
    name = site.rsplit(".", 1)[-1].removeprefix("hook_")
    return f"L{layer} {name}"


def feature_key(site: str, index: int) -> str:
    """The key of a feature (all its positions): `SITE:INDEX`; labels are stored by it."""
    return f"{site}:{index}"


def node_label(node: NodeRecord, tokens: list[str], labels: Mapping[str, str], metric: str) -> str:
    """A readable label: the feature's label (user's, else its top token), the token itself, `err`
    with its row, or the metric's name."""
    if node.kind == "feature" and node.index is not None:
        text = labels.get(feature_key(node.site, node.index))
        return text if text else f"#{node.index}"
    if node.kind == "token":
        if node.pos is not None and 0 <= node.pos < len(tokens):
            return repr(tokens[node.pos])
        return "tokens"
    if node.kind == "error":
        return "err " + site_label(node.site, node.layer)
    return node.label or metric


def _cumulative(scores: Tensor) -> list[float]:
    """For each item, the share of the total score held by the items ranked above it (ties keep
    their order, as `prune_influence` ranks them)."""
    total = float(scores.sum())
    if scores.numel() == 0 or total <= 0:
        return [0.0] * scores.numel()
    order = torch.argsort(-scores, stable=True)
    before = torch.cumsum(scores[order], 0) - scores[order]
    out = torch.empty_like(scores)
    out[order] = before / total
    return float_list(out)


def influence_ranks(graph: AttributionGraph) -> dict[str, float]:
    """Each node's `rank` (see the module docstring; 0 for the metric node): pruning at fraction F
    keeps the nodes with rank < F, as `prune_influence(F)` does."""
    scores = graph.influence_scores().clone()
    scores[graph.metric_row] = 0.0
    return dict(zip(graph.ids, _cumulative(scores), strict=True))


def graph_view(graph: AttributionGraph, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The view model of `graph` (see the module docstring); `labels` maps `SITE:INDEX` to text.
    Reads the node table's columns and the COO adjacency directly: no Python object per edge."""
    labels = labels or {}
    tokens = prompt_tokens(graph)
    table = graph.table
    n = len(table)
    kinds = [NODE_KINDS[k] for k in int_list(table.kind)]
    sites = [table.sites[c] for c in int_list(table.site)]
    positions = int_list(table.pos)
    indices = int_list(table.index)
    layers = int_list(table.layer)
    orders = int_list(table.order)
    metric_row = graph.metric_row

    row_of: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for i in sorted(range(n), key=lambda i: orders[i]):
        if orders[i] not in row_of:
            row_of[orders[i]] = len(rows)
            label = graph.metric if kinds[i] == "logit" else site_label(sites[i], layers[i])
            rows.append({"label": label, "order": orders[i]})

    influence = graph.influence_scores()
    node_scores = influence.clone()
    node_scores[metric_row] = 0.0
    node_rank = _cumulative(node_scores)
    targets, sources = graph.edge_index
    weights = graph.edge_weight
    totals = torch.zeros(n, dtype=torch.float64).index_add_(0, targets, weights.abs())
    edge_scores = torch.where(
        totals[targets] > 0,
        influence[targets] * weights.abs() / totals[targets].clamp_min(1e-300),
        0.0,
    )
    influence_list = float_list(influence)
    records = graph.nodes
    nodes: list[dict[str, Any]] = []
    for i, node_id in enumerate(graph.ids):
        index = None if indices[i] == NO_VALUE else int(indices[i])
        key = feature_key(sites[i], index) if kinds[i] == "feature" and index is not None else None
        nodes.append(
            {
                "id": node_id,
                "kind": kinds[i],
                "site": sites[i],
                "layer": layers[i],
                "row": row_of[orders[i]],
                "pos": positions[i],
                "index": index,
                "feature": key,
                "label": node_label(records[node_id], tokens, labels, graph.metric),
                "act": float(table.activation[i]),
                "effect": _finite(float(table.effect[i])),
                "influence": 1.0 if i == metric_row else influence_list[i],
                "rank": 0.0 if i == metric_row else node_rank[i],
            }
        )
    metric_label = table.label[metric_row] or graph.metric
    return {
        "method": graph.method,
        "metric": graph.metric,
        "metricLabel": metric_label,
        "settings": {
            k: v
            for k, v in graph.settings.items()
            if isinstance(v, (str, int, bool)) or (isinstance(v, float) and math.isfinite(v))
        },
        "tokens": tokens,
        "nPrompts": len(graph.prompts),
        "rows": rows,
        "nodes": nodes,
        "edges": {
            "s": int_list(sources),
            "t": int_list(targets),
            "w": float_list(weights),
            "influence": float_list(edge_scores),
            "rank": _cumulative(edge_scores),
        },
    }


def _finite(value: float) -> float:
    """JSON has no NaN: a metric node without a baseline has no effect value; show 0."""
    return value if math.isfinite(value) else 0.0


def node_ids(graph: AttributionGraph) -> set[str]:
    """Every node id of `graph` (what annotations may refer to)."""
    return set(graph.ids)


def node_record(graph: AttributionGraph, node_id: str) -> NodeRecord | None:
    """The node with id `node_id`, or None."""
    return graph.nodes.get(node_id)


def neighbours(
    graph: AttributionGraph, node_id: str, k: int = 12
) -> tuple[list[tuple[NodeRecord, float]], list[tuple[NodeRecord, float]]]:
    """The `k` strongest upstream and downstream neighbours of a node in `graph`, with weights."""
    return graph.upstream(node_id)[:k], graph.downstream(node_id)[:k]


def prompt_tokens(graph: AttributionGraph) -> list[str]:
    """Prompt 0's token strings."""
    return list(graph.prompts[0]) if graph.prompts else []


def feature_nodes(graph: AttributionGraph) -> list[tuple[str, int]]:
    """(site, index) of every feature node, in node order, without repeats."""
    table = graph.table
    feature = NODE_KINDS.index("feature")
    seen: dict[tuple[str, int], None] = {}
    for kind, site, index in zip(
        int_list(table.kind), int_list(table.site), int_list(table.index), strict=True
    ):
        if kind == feature and index != NO_VALUE:
            seen[(table.sites[site], int(index))] = None
    return list(seen)


def graph_size(graph: AttributionGraph) -> tuple[int, int]:
    """(nodes, edges)."""
    return len(graph.ids), int(graph.edge_weight.shape[0])
