"""Clusters in the dashboards: a page per cluster of a connectome's features, the colour each
cluster has everywhere, and the collapsed connectome (one super-node per cluster).

Clusters come from `feature_lens.clustering`: features of the attribution graph grouped by their
connectivity profiles (the weights of their edges in the graph), or any mapping of node ids to
cluster ids. A node id carries the position when the graph kept positions, so the same feature at
two positions may sit in two clusters; pages list member *nodes*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from feature_lens.dashboard.data import FeatureId
from feature_lens.dashboard.html import cluster_colour, esc, fmt, page, swatch, table
from feature_lens.dashboard.pages import SiteInfo
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, NodeRecord

__all__ = [
    "Cluster",
    "check_clusters",
    "cluster_colour",
    "cluster_graph",
    "cluster_page",
    "cluster_path",
    "clusters_of",
    "clusters_section",
    "placed",
    "super_node_label",
]


def cluster_graph(graph: AttributionGraph, n_clusters: int) -> dict[str, int]:
    """Cluster the feature nodes of `graph` by connectivity (cosine distance of their edge-weight
    profiles, average linkage): node id -> cluster id in 0..n_clusters-1. Feature nodes without
    edges have no profile and stay unclustered."""
    from feature_lens.clustering import cluster_profiles, connectivity_profiles

    profiles = connectivity_profiles([graph])
    n_features = len(profiles.node_ids)
    if not 1 <= n_clusters <= n_features:
        raise InputError(
            f"cannot make {n_clusters} clusters: the graph has {n_features} connected feature "
            f"nodes; pass a number of clusters between 1 and {n_features}"
        )
    return cluster_profiles(profiles, n_clusters)


def check_clusters(graph: AttributionGraph, clusters: Mapping[str, int]) -> dict[str, int]:
    """`clusters` as a dict, after checking that every key is a feature node of `graph`."""
    for node_id, k in clusters.items():
        node = graph.nodes.get(node_id)
        if node is None or node.kind != "feature":
            raise InputError(
                f"cluster member {node_id!r} is not a feature node of the graph; "
                "clusters map the graph's feature node ids to cluster ids"
            )
        if k < 0:
            raise InputError(f"cluster ids must be >= 0, got {k} for {node_id!r}")
    return dict(clusters)


@dataclass
class Cluster:
    """One cluster: its member nodes (strongest effect first) and its super-node's edges in the
    collapsed graph (`(other node id, weight)`, strongest first)."""

    k: int
    members: list[NodeRecord]
    incoming: list[tuple[str, float]]
    outgoing: list[tuple[str, float]]

    @property
    def effect(self) -> float:
        """The members' summed effect on the metric (the super-node's effect)."""
        return sum(m.effect for m in self.members)

    @property
    def node_id(self) -> str:
        """The super-node's id in the collapsed graph."""
        return f"cluster:{self.k}"


def clusters_of(
    graph: AttributionGraph, collapsed: AttributionGraph, clusters: Mapping[str, int]
) -> list[Cluster]:
    """Every cluster of `clusters` (ids in increasing order) with its members in `graph` and its
    edges in `collapsed` (= `feature_lens.clustering.collapse(graph, clusters)`)."""
    out: list[Cluster] = []
    for k in sorted(set(clusters.values())):
        members = sorted(
            (graph.nodes[i] for i, c in clusters.items() if c == k), key=lambda n: -abs(n.effect)
        )
        node_id = f"cluster:{k}"
        incoming = [(s, w) for (s, t), w in collapsed.edges.items() if t == node_id]
        outgoing = [(t, w) for (s, t), w in collapsed.edges.items() if s == node_id]
        out.append(
            Cluster(
                k,
                members,
                sorted(incoming, key=lambda e: -abs(e[1])),
                sorted(outgoing, key=lambda e: -abs(e[1])),
            )
        )
    return out


def placed(collapsed: AttributionGraph, clusters: Sequence[Cluster]) -> AttributionGraph:
    """`collapsed` with each super-node in the column of its members' median site (`collapse`
    puts it at the earliest, which stacks clusters that span layers into one column)."""
    order = collapsed.table.order.clone()
    for cluster in clusters:
        orders = sorted(m.order for m in cluster.members)
        row = collapsed.table.row_of.get(cluster.node_id)
        if row is not None and orders:
            order[row] = orders[(len(orders) - 1) // 2]
    return collapsed.with_table(collapsed.table.with_columns(order=order))


def super_node_label(node: NodeRecord) -> str:
    """`C<k> (n features)` for a super-node (singular for one member)."""
    size = (
        node.label.replace("1 features", "1 feature") if node.label.startswith("1 ") else node.label
    )
    return f"C{node.cluster} ({size})" if size else f"C{node.cluster}"


def cluster_path(k: int) -> str:
    """Path of cluster `k`'s page relative to the site root."""
    return f"clusters/{k}.html"


def cluster_link(k: int, info: SiteInfo, root: str) -> str:
    """`C<k>` with its colour, linked to its page when the site has one."""
    text = f"{swatch(k)}C{k}"
    href = info.cluster_href(k, root)
    return f'<a href="{esc(href)}">{text}</a>' if href else text


def _token(graph: AttributionGraph, pos: int | None) -> str:
    if pos is None or not graph.prompts or pos >= len(graph.prompts[0]):
        return ""
    return graph.prompts[0][pos]


def _partner(node_id: str, collapsed: AttributionGraph, info: SiteInfo) -> str:
    node = collapsed.nodes[node_id]
    if node.site == "cluster" and node.cluster is not None:
        size = super_node_label(node).partition(" ")[2].strip("()")
        return f"{cluster_link(node.cluster, info, '../')} <span class='muted'>{esc(size)}</span>"
    if node.kind == "feature" and node.index is not None:
        href = info.href(FeatureId(node.site, node.index), "../")
        text = esc(node.id)
        return f'<a href="{esc(href)}">{text}</a>' if href else text
    if node.kind == "logit":
        return f"metric {esc(collapsed.metric)}"
    at = "" if node.pos is None else f" @{node.pos}"
    if node.kind == "error":
        return f"error term at {esc(info.short(node.site))}{esc(at)}"
    return f"token <code>{esc(repr(_token(collapsed, node.pos)))}</code>{esc(at)}"


def _edges_table(
    edges: list[tuple[str, float]], collapsed: AttributionGraph, info: SiteInfo
) -> str:
    if not edges:
        return '<p class="muted">none</p>'
    rows = [
        [
            _partner(other, collapsed, info),
            f'<span class="{"pos" if w >= 0 else "neg"}">{esc(fmt(w))}</span>',
        ]
        for other, w in edges
    ]
    return table(["node", "summed weight"], rows)


def cluster_page(
    cluster: Cluster, graph: AttributionGraph, collapsed: AttributionGraph, info: SiteInfo
) -> str:
    """The HTML of one cluster's page (it lives in `clusters/`)."""
    root = "../"
    nav = f'<nav><a href="{root}index.html">index</a>'
    if info.has_connectome:
        nav += f'<a href="{root}connectome.html">connectome</a>'
    nav += '<a href="collapsed.html">collapsed connectome</a></nav>'
    rows: list[list[str]] = []
    for m in cluster.members:
        feature = FeatureId(m.site, m.index) if m.index is not None else None
        href = info.href(feature, root)
        name = esc(feature.label if feature else m.id)
        rows.append(
            [
                f'<a href="{esc(href)}">{name}</a>' if href else name,
                esc(info.short(m.site)),
                esc("all" if m.pos is None else m.pos),
                f"<code>{esc(repr(_token(graph, m.pos)))}</code>" if m.pos is not None else "",
                esc(fmt(m.activation)),
                f'<span class="{"pos" if m.effect >= 0 else "neg"}">{esc(fmt(m.effect))}</span>',
            ]
        )
    body = (
        f"{nav}<h1>{swatch(cluster.k)}Cluster {cluster.k} "
        f"<span class='muted'>{len(cluster.members)} feature nodes of the {esc(graph.metric)} "
        "connectome</span></h1>"
        '<p class="stats">'
        f"<span>summed effect on {esc(graph.metric)} <b>{esc(fmt(cluster.effect))}</b></span>"
        f"<span>summed activation <b>{esc(fmt(sum(m.activation for m in cluster.members)))}</b></span></p>"
        '<p class="muted">features grouped by their connectivity in the attribution graph (the '
        "weights of their edges to and from every other node); a node is a feature at one "
        "position when the graph kept positions (token of prompt 0)</p>"
        "<h2>Members</h2>"
        f'<div class="members">{table(["feature", "layer", "position", "token", "activation", f"effect on {graph.metric}"], rows)}</div>'
        '<div class="grid"><div><h2>Into this cluster</h2>'
        f"{_edges_table(cluster.incoming, collapsed, info)}</div>"
        "<div><h2>Out of this cluster</h2>"
        f"{_edges_table(cluster.outgoing, collapsed, info)}</div></div>"
        '<p class="muted">edges of the collapsed graph: each cluster is one super-node, weights '
        "between clusters are summed and edges inside a cluster dropped</p>"
    )
    return page(f"cluster {cluster.k} — feature-lens", body, root=root, scripts=())


def clusters_section(clusters: list[Cluster], info: SiteInfo, metric: str) -> str:
    """The index's table of clusters."""
    rows = [
        [
            cluster_link(c.k, info, ""),
            str(len(c.members)),
            f'<span class="{"pos" if c.effect >= 0 else "neg"}">{esc(fmt(c.effect))}</span>',
            esc(", ".join(m.id for m in c.members[:3])),
        ]
        for c in clusters
    ]
    return (
        '<h2 id="clusters">Clusters</h2>'
        '<p><a href="clusters/collapsed.html">Open the collapsed connectome</a> '
        '<span class="muted">(one node per cluster)</span></p>'
        f"{table(['cluster', 'members', f'summed effect on {metric}', 'strongest members'], rows)}"
    )
