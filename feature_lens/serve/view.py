"""The one place the explorer reads an `AttributionGraph`: graph -> a JSON view model.

The browser draws what this module returns and nothing else, so when the graph's internal form
changes only this module changes. The view model:

    {"method", "metric", "metricLabel", "tokens": [prompt 0's token strings], "nPrompts",
     "rows": [{"label", "order"}],              # y axis, bottom (tokens) to top (metric)
     "nodes": [{"id", "kind", "site", "row", "pos", "index", "feature", "label", "act",
                "effect", "influence", "rank"}],
     "edges": {"s": [node row], "t": [node row], "w": [weight], "influence": [...], "rank": [...]}}

`pos` is the token position (-1: every position at once); `row` indexes `rows`. `influence` is a
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

from feature_lens.graph import AttributionGraph, NodeRecord


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


def _cumulative(scores: list[float]) -> list[float]:
    """For each item, the share of the total score held by the items ranked above it."""
    total = sum(scores)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    out = [0.0] * len(scores)
    running = 0.0
    for i in order:
        out[i] = running / total if total > 0 else 0.0
        running += scores[i]
    return out


def graph_view(graph: AttributionGraph, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The view model of `graph` (see the module docstring); `labels` maps `SITE:INDEX` to text."""
    labels = labels or {}
    tokens = list(graph.prompts[0]) if graph.prompts else []
    records = list(graph.nodes.values())
    row_of: dict[int, int] = {}
    rows: list[dict[str, Any]] = []
    for node in sorted(records, key=lambda n: n.order):
        if node.order not in row_of:
            row_of[node.order] = len(rows)
            label = graph.metric if node.kind == "logit" else site_label(node.site, node.layer)
            rows.append({"label": label, "order": node.order})
    index = {node.id: i for i, node in enumerate(records)}
    influence = graph.influence()
    node_scores = [influence.get(n.id, 0.0) if n.kind != "logit" else 0.0 for n in records]
    node_rank = _cumulative(node_scores)

    sources: list[int] = []
    targets: list[int] = []
    weights: list[float] = []
    incoming: dict[int, float] = {}
    for (source, target), weight in graph.edges.items():
        if source not in index or target not in index:
            continue
        s, t = index[source], index[target]
        sources.append(s)
        targets.append(t)
        weights.append(weight)
        incoming[t] = incoming.get(t, 0.0) + abs(weight)
    edge_scores = [
        influence.get(records[t].id, 0.0) * abs(w) / incoming[t] if incoming.get(t) else 0.0
        for t, w in zip(targets, weights, strict=True)
    ]
    nodes: list[dict[str, Any]] = []
    for i, node in enumerate(records):
        is_feature = node.kind == "feature" and node.index is not None
        nodes.append(
            {
                "id": node.id,
                "kind": node.kind,
                "site": node.site,
                "layer": node.layer,
                "row": row_of[node.order],
                "pos": -1 if node.pos is None else node.pos,
                "index": node.index,
                "feature": feature_key(node.site, node.index)
                if is_feature and node.index is not None
                else None,
                "label": node_label(node, tokens, labels, graph.metric),
                "act": node.activation,
                "effect": node.effect,
                "influence": 1.0 if node.kind == "logit" else influence.get(node.id, 0.0),
                "rank": 0.0 if node.kind == "logit" else node_rank[i],
            }
        )
    metric_label = next((n.label for n in records if n.kind == "logit" and n.label), graph.metric)
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
            "s": sources,
            "t": targets,
            "w": weights,
            "influence": edge_scores,
            "rank": _cumulative(edge_scores),
        },
    }


def node_ids(graph: AttributionGraph) -> set[str]:
    """Every node id of `graph` (what annotations may refer to)."""
    return set(graph.nodes)


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
    seen: dict[tuple[str, int], None] = {}
    for node in graph.nodes.values():
        if node.kind == "feature" and node.index is not None:
            seen[(node.site, node.index)] = None
    return list(seen)
