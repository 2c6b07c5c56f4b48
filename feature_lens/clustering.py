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
from dataclasses import dataclass

import numpy as np
import torch

from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, NodeRecord


@dataclass
class Profiles:
    """Connectivity profiles: one row per feature node id, one column per (direction, partner)."""

    node_ids: list[str]
    columns: list[str]
    matrix: np.ndarray


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
    for g, graph in enumerate(graphs):
        metric_id = graph.metric_node.id
        for (source, target), weight in graph.edges.items():
            target_key = f"{target}#{g}" if target == metric_id else target
            if graph.nodes[source].kind == "feature" and (include_metric or target != metric_id):
                rows[source][f"out:{target_key}"] = (
                    rows[source].get(f"out:{target_key}", 0.0) + weight
                )
            if graph.nodes[target].kind == "feature":
                rows[target][f"in:{source}"] = rows[target].get(f"in:{source}", 0.0) + weight
        if include_activation:
            for node_id, node in graph.nodes.items():
                if node.kind == "feature":
                    rows[node_id][f"act#{g}"] = node.activation
    node_ids = sorted(rows)
    columns = sorted({c for row in rows.values() for c in row})
    index = {c: j for j, c in enumerate(columns)}
    matrix = np.zeros((len(node_ids), len(columns)))
    for i, node_id in enumerate(node_ids):
        for column, value in rows[node_id].items():
            matrix[i, index[column]] = value
    return Profiles(node_ids, columns, matrix)


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
    return model.fit_predict(safe)


def cluster_profiles(profiles: Profiles, n_clusters: int) -> dict[str, int]:
    """Cluster features by the cosine distance of their profiles."""
    labels = _agglomerative(profiles.matrix, n_clusters)
    return {node_id: int(label) for node_id, label in zip(profiles.node_ids, labels, strict=True)}


def decoder_clusters(lens: object, node_ids: Sequence[str], n_clusters: int) -> dict[str, int]:
    """Baseline: cluster the same features by the cosine distance of their decoder directions."""
    from feature_lens.attribution.nodes import Node
    from feature_lens.lens import Lens

    assert isinstance(lens, Lens)
    vectors = []
    for node_id in node_ids:
        node = Node.from_id(node_id)
        if node.kind != "feature" or node.index is None:
            raise InputError(f"{node_id} is not a feature node")
        vectors.append(
            lens.dictionary(node.site).W_dec[node.index].detach().to(torch.float64).cpu().numpy()
        )
    widths = {len(v) for v in vectors}
    if len(widths) > 1:
        raise InputError(
            "decoder directions of different widths cannot be compared; pick features writing to the same stream"
        )
    labels = _agglomerative(np.stack(vectors), n_clusters)
    return {node_id: int(label) for node_id, label in zip(node_ids, labels, strict=True)}


def adjusted_rand_index(predicted: Mapping[str, int], truth: Mapping[str, int]) -> float:
    """ARI between two labellings over the ids they share (1: identical partitions, ~0: chance)."""
    from sklearn.metrics import adjusted_rand_score

    shared = sorted(set(predicted) & set(truth))
    if not shared:
        raise InputError("the two labellings share no node ids")
    return float(adjusted_rand_score([truth[i] for i in shared], [predicted[i] for i in shared]))


def annotate(graph: AttributionGraph, clusters: Mapping[str, int]) -> AttributionGraph:
    """A copy of `graph` with each node's `cluster` set from `clusters` (others left None)."""
    nodes = {i: n.model_copy(update={"cluster": clusters.get(i)}) for i, n in graph.nodes.items()}
    return AttributionGraph(
        graph.method,
        graph.metric,
        nodes,
        dict(graph.edges),
        {**graph.settings, "clustered": True},
        graph.prompts,
    )


def collapse(graph: AttributionGraph, clusters: Mapping[str, int]) -> AttributionGraph:
    """Merge each cluster's nodes into a super-node `cluster:<k>`: effects and activations summed,
    edges between clusters summed, edges inside a cluster dropped; unclustered nodes stay."""

    def new_id(node_id: str) -> str:
        return f"cluster:{clusters[node_id]}" if node_id in clusters else node_id

    nodes: dict[str, NodeRecord] = {}
    for node_id, node in graph.nodes.items():
        target = new_id(node_id)
        if target == node_id:
            nodes[node_id] = node
            continue
        members = [graph.nodes[i] for i in graph.nodes if new_id(i) == target]
        if target not in nodes:
            nodes[target] = NodeRecord(
                id=target,
                kind="feature",
                site="cluster",
                layer=min(m.layer for m in members),
                order=min(m.order for m in members),
                activation=sum(m.activation for m in members),
                effect=sum(m.effect for m in members),
                label=f"{len(members)} features",
                cluster=clusters[node_id],
            )
    edges: dict[tuple[str, str], float] = defaultdict(float)
    for (source, target), weight in graph.edges.items():
        s, t = new_id(source), new_id(target)
        if s != t:
            edges[(s, t)] += weight
    return AttributionGraph(
        graph.method,
        graph.metric,
        nodes,
        dict(edges),
        {**graph.settings, "collapsed": True},
        graph.prompts,
    )
