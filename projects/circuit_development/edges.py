"""Circuit edges across checkpoints: carry one checkpoint's edges into another's feature indices,
then measure how many persist.

A circuit at a checkpoint is the graph `attribute(..., edges=True)` returns: its nodes (features,
error terms, token nodes, the metric) and weighted edges between them (feature -> feature edges
from the engine's edge method, and node -> metric edges, which are the node effects). Two
checkpoints' SAEs index their features differently, so an earlier graph is first *mapped*: each
feature node goes to its partner under a feature matching (earlier index -> later index, per
site); a feature without a partner has no counterpart, and its edges are dropped. Error, token and
metric nodes keep their identity (same site, same position).

`edge_persistence` then compares the mapped earlier edges with the later ones:

- `persisted`: share of the later graph's top-`top` edges (by |weight|) that are also among the
  mapped earlier graph's top-`top` edges, same direction;
- `endpoints_present`: share of those later edges whose two endpoints are both nodes of the mapped
  earlier graph (the wiring could exist: its features did);
- `sign_agreement`: among persisted edges, the share with the same sign of weight;
- `weighted_jaccard`: sum over all edges of min / sum of max of the two graphs' |weights|, each
  graph's |weights| first divided by their total (so the overall scale, which grows with the
  logit diff during training, does not count), 1 for identical wiring and 0 for disjoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NodeKey = tuple[str, str, int | None, int | None]
"""(kind, site, position, index) of a node; position None = every position."""
Edge = tuple[NodeKey, NodeKey]
"""(source, target)."""


def graph_edges(graph: Any) -> dict[Edge, float]:
    """The nonzero edges of an `AttributionGraph` as `{(source key, target key): weight}`."""
    keys = {record.id: _key(record.node) for record in graph.nodes.values()}
    return {
        (keys[source], keys[target]): float(weight)
        for (source, target), weight in graph.edges.items()
        if weight != 0
    }


def _key(node: Any) -> NodeKey:
    return (str(node.kind), str(node.site), node.pos, node.index)


def map_edges(
    edges: Mapping[Edge, float], matches: Mapping[str, Mapping[int, int]]
) -> dict[Edge, float]:
    """`edges` with every feature node renamed to its partner (site -> {index -> new index});
    edges touching a feature without a partner are dropped."""

    def rename(key: NodeKey) -> NodeKey | None:
        kind, site, pos, index = key
        if kind != "feature":
            return key
        partner = matches.get(site, {}).get(int(index)) if index is not None else None
        return None if partner is None else (kind, site, pos, int(partner))

    out: dict[Edge, float] = {}
    for (source, target), weight in edges.items():
        s, t = rename(source), rename(target)
        if s is not None and t is not None:
            out[s, t] = out.get((s, t), 0.0) + weight
    return out


def top_edges(edges: Mapping[Edge, float], top: int) -> list[Edge]:
    """The `top` edges by |weight| (ties broken by the edge's keys, so the order is stable)."""
    return sorted(edges, key=lambda e: (-abs(edges[e]), repr(e)))[:top]


def _nodes(edges: Mapping[Edge, float]) -> set[NodeKey]:
    return {key for edge in edges for key in edge}


def edge_persistence(
    earlier: Mapping[Edge, float], later: Mapping[Edge, float], *, top: int
) -> dict[str, float]:
    """Compare mapped `earlier` edges with `later` ones (see the module docstring)."""
    nan = float("nan")
    if not later or top < 1:
        return {
            "persisted": nan,
            "endpoints_present": nan,
            "sign_agreement": nan,
            "weighted_jaccard": nan,
        }
    later_top = top_edges(later, top)
    earlier_top = set(top_edges(earlier, top))
    nodes = _nodes(earlier)
    kept = [e for e in later_top if e in earlier_top]
    present = [e for e in later_top if e[0] in nodes and e[1] in nodes]
    same_sign = [e for e in kept if (earlier[e] > 0) == (later[e] > 0)]
    total_a = sum(abs(w) for w in earlier.values())
    total_b = sum(abs(w) for w in later.values())
    union = set(earlier) | set(later)
    if total_a > 0 and total_b > 0:
        lo = hi = 0.0
        for e in union:
            a = abs(earlier.get(e, 0.0)) / total_a
            b = abs(later.get(e, 0.0)) / total_b
            lo += min(a, b)
            hi += max(a, b)
        jaccard = lo / hi
    else:
        jaccard = 0.0
    return {
        "persisted": len(kept) / len(later_top),
        "endpoints_present": len(present) / len(later_top),
        "sign_agreement": len(same_sign) / len(kept) if kept else nan,
        "weighted_jaccard": jaccard,
    }
