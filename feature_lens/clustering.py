"""Feature clustering by connectivity: features with alike functional roles, found from their edges.

Each feature is described by its **connectivity profile**: the weights of its edges to and from
every other node, collected from one or more attribution graphs (e.g. one per task or prompt set),
optionally followed by its mean activation in each graph (its activation pattern). Profiles are
L2-normalised and clustered by cosine distance (average-linkage agglomerative clustering), so two
features group together when they read from and write to the same partners in the same proportions,
whatever their decoder directions. `decoder_clusters` clusters by decoder-direction cosine instead,
the baseline; `adjusted_rand_index` scores either against known labels. `annotate` writes cluster
ids into a graph's nodes (dashboards colour by them) and `collapse` merges each cluster into one
super-node, summing effects and edge weights.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, Node, NodeTable
from feature_lens.graph.node import cluster
from feature_lens.graph.table import NO_VALUE
from feature_lens.typed import float_list, int_list


@dataclass
class Profiles:
    """Connectivity profiles: one row per feature node, one column per (direction, partner)."""

    node_ids: list[str]
    columns: list[str]
    matrix: np.ndarray
    nodes: list[Node] = field(default_factory=list[Node])
    """The rows' nodes (same order as `node_ids`)."""


def connectivity_profiles(
    graphs: Sequence[AttributionGraph],
    *,
    include_activation: bool = False,
    include_metric: bool = True,
) -> Profiles:
    """Profiles of every feature node that appears in any of `graphs`.

    Columns are `in:<source id>` and `out:<target id>` (edge weights; a graph's metric node is
    `out:<metric>#<graph index>` so that different tasks' metrics stay distinct), plus
    `act#<graph index>` (the node's activation there) with `include_activation`.
    """
    if not graphs:
        raise InputError("need at least one graph to build connectivity profiles")
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    nodes: dict[str, Node] = {}
    for g, graph in enumerate(graphs):
        ids, table = graph.ids, graph.table
        is_feature = table.is_kind("feature")
        metric = graph.metric_row
        targets, sources = graph.edge_index
        out_edges = is_feature[sources] & (include_metric | (targets != metric))
        for t, s, w in zip(
            int_list(targets[out_edges]),
            int_list(sources[out_edges]),
            float_list(graph.edge_weight[out_edges]),
            strict=True,
        ):
            key = f"out:{ids[t]}#{g}" if t == metric else f"out:{ids[t]}"
            rows[ids[s]][key] = rows[ids[s]].get(key, 0.0) + w
        in_edges = is_feature[targets]
        for t, s, w in zip(
            int_list(targets[in_edges]),
            int_list(sources[in_edges]),
            float_list(graph.edge_weight[in_edges]),
            strict=True,
        ):
            key = f"in:{ids[s]}"
            rows[ids[t]][key] = rows[ids[t]].get(key, 0.0) + w
        for row in int_list(torch.nonzero(is_feature)[:, 0]):
            nodes[ids[row]] = table.nodes[row]
            if include_activation:
                rows[ids[row]][f"act#{g}"] = float(table.activation[row])
    node_ids = sorted(rows)
    columns = sorted({c for row in rows.values() for c in row})
    index = {c: j for j, c in enumerate(columns)}
    matrix = np.zeros((len(node_ids), len(columns)))
    for i, node_id in enumerate(node_ids):
        for column, value in rows[node_id].items():
            matrix[i, index[column]] = value
    return Profiles(node_ids, columns, matrix, [nodes[i] for i in node_ids])


def _agglomerative(vectors: np.ndarray, n_clusters: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if not 1 <= n_clusters <= len(vectors):
        raise InputError(
            f"n_clusters must be between 1 and the number of features ({len(vectors)}), got {n_clusters}"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.where(norms > 0, vectors / np.where(norms > 0, norms, 1), 0)
    if n_clusters == 1:
        return np.zeros(len(vectors), dtype=int)
    model = AgglomerativeClustering(n_clusters=n_clusters, metric="cosine", linkage="average")
    # Zero rows have no direction; cosine distance needs a non-zero vector.
    safe = np.where(norms > 0, unit, 1e-12)
    fitted: Any = model
    return np.asarray(fitted.fit_predict(safe), dtype=np.int64)


def cluster_profiles(profiles: Profiles, n_clusters: int) -> dict[str, int]:
    """Cluster features by the cosine distance of their profiles."""
    labels = _agglomerative(profiles.matrix, n_clusters)
    return {node_id: int(label) for node_id, label in zip(profiles.node_ids, labels, strict=True)}


def decoder_clusters(lens: object, nodes: Sequence[Node], n_clusters: int) -> dict[str, int]:
    """Baseline: cluster the same features (`Profiles.nodes`, or `graph.table.nodes`) by the
    cosine distance of their decoder directions; keys are node ids."""
    from feature_lens.lens import Lens

    assert isinstance(lens, Lens)
    vectors: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    for node in nodes:
        if node.kind != "feature" or node.index is None:
            raise InputError(f"{node.id} is not a feature node")
        vectors.append(
            lens.dictionary(node.site).W_dec[node.index].detach().to(torch.float64).cpu().numpy()
        )
    widths = {len(v) for v in vectors}
    if len(widths) > 1:
        raise InputError(
            "decoder directions of different widths cannot be compared; pick features writing to the same stream"
        )
    labels = _agglomerative(np.stack(vectors), n_clusters)
    return {node.id: int(label) for node, label in zip(nodes, labels, strict=True)}


def adjusted_rand_index(predicted: Mapping[str, int], truth: Mapping[str, int]) -> float:
    """ARI between two labellings over the ids they share (1: identical partitions, ~0: chance)."""
    from sklearn import metrics

    sklearn_metrics: Any = metrics  # sklearn's stubs leave argument types unknown

    shared = sorted(set(predicted) & set(truth))
    if not shared:
        raise InputError("the two labellings share no node ids")
    return float(
        sklearn_metrics.adjusted_rand_score(
            [truth[i] for i in shared], [predicted[i] for i in shared]
        )
    )


def annotate(graph: AttributionGraph, clusters: Mapping[str, int]) -> AttributionGraph:
    """A copy of `graph` with each node's `cluster` set from `clusters` (others left None)."""
    column = torch.tensor([clusters.get(i, NO_VALUE) for i in graph.ids], dtype=torch.int64)
    return replace(
        graph,
        table=graph.table.with_columns(cluster=column),
        settings={**graph.settings, "clustered": True},
    )


def collapse(graph: AttributionGraph, clusters: Mapping[str, int]) -> AttributionGraph:
    """Merge each cluster's nodes into a super-node `cluster:<k>` (at its first member's row):
    effects and activations summed, edges between clusters summed, edges inside a cluster
    dropped; unclustered nodes stay."""
    table = graph.table
    new_row = torch.empty(len(table), dtype=torch.int64)
    kept: list[int] = []  # old row of each new row (the first member, for a super-node)
    first: dict[int, int] = {}  # cluster -> its new row
    for row, node_id in enumerate(graph.ids):
        k = clusters.get(node_id)
        if k is None:
            new_row[row] = len(kept)
            kept.append(row)
        elif k in first:
            new_row[row] = first[k]
        else:
            first[k] = new_row[row] = len(kept)
            kept.append(row)
    size = len(kept)
    activation = torch.zeros(size, dtype=torch.float64).index_add_(0, new_row, table.activation)
    effect = torch.zeros(size, dtype=torch.float64).index_add_(0, new_row, table.effect)
    layer = torch.full((size,), 2**62, dtype=torch.int64).scatter_reduce(
        0, new_row, table.layer, "amin"
    )
    order = torch.full((size,), 2**62, dtype=torch.int64).scatter_reduce(
        0, new_row, table.order, "amin"
    )
    members = int_list(torch.bincount(new_row, minlength=size))
    super_of = {row: k for k, row in first.items()}
    nodes = [cluster(super_of[r]) if r in super_of else table.nodes[kept[r]] for r in range(size)]
    labels = [
        f"{members[r]} features" if r in super_of else table.label[kept[r]] for r in range(size)
    ]
    cluster_column = [
        super_of[r] if r in super_of else _cluster_of(table, kept[r]) for r in range(size)
    ]
    new_table = NodeTable.from_nodes(
        nodes,
        layer=layer,
        order=order,
        activation=activation,
        effect=effect,
        label=labels,
        cluster=cluster_column,
    )
    index = new_row[graph.edge_index]
    between = index[0] != index[1]
    return AttributionGraph(
        graph.method,
        graph.metric,
        new_table,
        index[:, between],
        graph.edge_weight[between],
        {**graph.settings, "collapsed": True},
        graph.prompts,
    ).coalesced()


def _cluster_of(table: NodeTable, row: int) -> int | None:
    value = int(table.cluster[row])
    return None if value == NO_VALUE else value
