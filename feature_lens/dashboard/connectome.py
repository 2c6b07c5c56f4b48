"""The connectome view: an attribution graph as a layered graph (sites as columns, in forward
order), edges coloured by sign and sized by |weight|, a threshold slider, hover for values, and
clicks that open feature pages.

Nodes with a `cluster` (see `feature_lens.clustering.annotate`) are filled with their cluster's
colour, with a legend; a collapsed graph's super-nodes (`cluster:<k>`, site "cluster") sit in the
column of their earliest member and open their cluster's page when the site has one.
"""

from __future__ import annotations

from collections.abc import Sequence

from feature_lens.dashboard.clusters import super_node_label
from feature_lens.dashboard.data import FeatureId
from feature_lens.dashboard.html import cluster_colour, esc, fmt, json_script, page, swatch
from feature_lens.dashboard.pages import SiteInfo
from feature_lens.graph import AttributionGraph, NodeRecord


def _token(graph: AttributionGraph, pos: int | None) -> str:
    if pos is None or not graph.prompts or pos >= len(graph.prompts[0]):
        return ""
    return graph.prompts[0][pos]


def is_super_node(node: NodeRecord) -> bool:
    """A cluster's super-node in a collapsed graph (`feature_lens.clustering.collapse`)."""
    return node.site == "cluster" and node.cluster is not None


def _label(graph: AttributionGraph, node: NodeRecord) -> str:
    at = "" if node.pos is None else f"@{node.pos}"
    if is_super_node(node):
        return super_node_label(node)
    if node.kind == "feature":
        return f"{node.index}{at}"
    if node.kind == "error":
        return f"err{at}"
    if node.kind == "token":
        return f"{_token(graph, node.pos)!r}{at}"
    return node.label or graph.metric


def graph_data(graph: AttributionGraph, info: SiteInfo, root: str = "") -> dict[str, object]:
    """Nodes and edges of `graph` in the form graph.js draws (`column` = site order; `cluster` and
    `fill` on clustered nodes)."""
    site_of_order = {order: site for site, order in info.order.items()}
    nodes: list[dict[str, object]] = []
    for node in graph.nodes.values():
        feature = (
            FeatureId(node.site, node.index)
            if node.kind == "feature" and node.index is not None
            else None
        )
        token = _token(graph, node.pos)
        detail = [node.id]
        if is_super_node(node):
            # Its column (the earliest member's, or where `placed` put it) is a site's order:
            # label it by that site when the Lens knows it.
            column_site = site_of_order.get(node.order)
            column_label = info.short(column_site) if column_site else "clusters"
            href = info.cluster_href(node.cluster, root) if node.cluster is not None else None
            detail.append(f"cluster {node.cluster}: {node.label}")
        else:
            column_label = graph.metric if node.kind == "logit" else info.short(node.site)
            href = info.href(feature, root)
        if token:
            detail.append(f"token {token!r} (prompt 0)")
        if node.cluster is not None and not is_super_node(node):
            detail.append(f"cluster {node.cluster}")
        detail.append(f"activation {fmt(node.activation)}")
        detail.append(f"effect on {graph.metric} {fmt(node.effect)}")
        item: dict[str, object] = {
            "id": node.id,
            "label": _label(graph, node),
            "column": node.order,
            "columnLabel": column_label,
            "row": (node.pos if node.pos is not None else -1) * 1e6 - abs(node.effect),
            "kind": node.kind,
            "href": href,
            "value": abs(node.effect),
            "info": "\n".join(detail),
        }
        if node.cluster is not None:
            item["cluster"] = node.cluster
            item["fill"] = cluster_colour(node.cluster)
        nodes.append(item)
    edges = [{"s": s, "t": t, "w": w} for (s, t), w in graph.edges.items()]
    tokens = graph.prompts[0] if graph.prompts else []
    return {"nodes": nodes, "edges": edges, "tokens": tokens}


def legend(graph: AttributionGraph, info: SiteInfo, root: str = "") -> str:
    """The cluster colours of `graph`'s nodes, each linked to its page when the site has one;
    empty when no node has a cluster."""
    sizes: dict[int, str] = {}
    counts: dict[int, int] = {}
    for node in graph.nodes.values():
        if node.cluster is None:
            continue
        if is_super_node(node):
            sizes[node.cluster] = _label(graph, node).partition(" ")[2].strip("()")
        else:
            counts[node.cluster] = counts.get(node.cluster, 0) + 1
    for k, n in counts.items():
        sizes.setdefault(k, f"{n} node{'s' if n != 1 else ''}")
    if not sizes:
        return ""
    items: list[str] = []
    for k in sorted(sizes):
        href = info.cluster_href(k, root)
        text = f"{swatch(k)}C{k}"
        link = f'<a href="{esc(href)}">{text}</a>' if href else text
        items.append(f'<span class="item" data-cluster="{k}">{link} ({esc(sizes[k])})</span>')
    return f'<div class="legend"><b>clusters</b> (node fill): {"".join(items)}</div>'


def connectome_page(
    graph: AttributionGraph,
    info: SiteInfo,
    *,
    root: str = "",
    inline_assets: bool = False,
    title: str = "Connectome",
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    """The connectome view's HTML (`root`: the site root relative to the page; `nav`: more
    (text, href) links after the one to the index)."""
    settings = ", ".join(
        f"{k}={v}" for k, v in graph.settings.items() if not isinstance(v, (dict, list))
    )
    prompt = " ".join(graph.prompts[0]) if graph.prompts else ""
    links = "".join(f'<a href="{esc(href)}">{esc(text)}</a>' for text, href in nav)
    body = (
        f'<nav><a href="{root}index.html">index</a>{links}</nav>'
        f"<h1>{esc(title)}: {esc(graph.metric)} <span class='muted'>method {esc(graph.method)}</span></h1>"
        f'<p class="muted">prompt 0 of {len(graph.prompts)}: <code class="prompt">{esc(prompt)}</code></p>'
        f'<p class="muted">{esc(settings)}</p>'
        f'<p class="muted">{len(graph.nodes)} nodes, {len(graph.edges)} edges. Columns are sites in '
        "forward order; blue edges are positive, red negative, width by |weight|. Hover for values, "
        "click a feature to open its page.</p>"
        f"{legend(graph, info, root)}"
        '<div class="controls"><label>edge threshold <input type="range" id="threshold" min="0" '
        'max="1000" value="0"></label> <span id="threshold-label"></span></div>'
        '<div class="graph" data-graph="connectome" data-slider="threshold" '
        'data-slider-label="threshold-label" data-col-width="170"></div>'
        f"{json_script('connectome', graph_data(graph, info, root))}"
    )
    return page(
        f"{title.lower()}: {graph.metric} — feature-lens",
        body,
        root=root,
        inline_assets=inline_assets,
    )
