"""The connectome view: an attribution graph as a layered graph (sites as columns, in forward
order), edges coloured by sign and sized by |weight|, a threshold slider, hover for values, and
clicks that open feature pages.

Nodes with a `cluster` (see `feature_lens.clustering.annotate`) are filled with their cluster's
colour, with a legend; a collapsed graph's super-nodes (`cluster:<k>`, site "cluster") sit in the
column of their earliest member and open their cluster's page when the site has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from feature_lens.dashboard.clusters import super_node_label
from feature_lens.dashboard.data import FeatureId
from feature_lens.dashboard.html import cluster_colour, esc, fmt, json_script, page, swatch
from feature_lens.dashboard.pages import SiteInfo
from feature_lens.graph import AttributionGraph, NodeRecord

Layout = Literal["positions", "columns"]


def _token(graph: AttributionGraph, pos: int | None) -> str:
    if pos is None or not graph.prompts or pos >= len(graph.prompts[0]):
        return ""
    return graph.prompts[0][pos]


def is_super_node(node: NodeRecord) -> bool:
    """A cluster's super-node in a collapsed graph (`feature_lens.clustering.collapse`)."""
    return node.site == "cluster" and node.cluster is not None


def _label(
    graph: AttributionGraph,
    node: NodeRecord,
    labels: Mapping[FeatureId, str] | None = None,
    *,
    with_pos: bool = True,
) -> str:
    """A readable label: a feature's label (the node's, else `labels`, e.g. its top token), else
    its index; `@pos` only when the layout does not show positions."""
    at = "" if node.pos is None or not with_pos else f"@{node.pos}"
    if is_super_node(node):
        return super_node_label(node)
    if node.kind == "feature":
        named = node.label or (
            (labels or {}).get(FeatureId(node.site, node.index)) if node.index is not None else None
        )
        return f"{named}{at}" if named else f"#{node.index}{at}"
    if node.kind == "error":
        return f"err{at}"
    if node.kind == "token":
        return f"{_token(graph, node.pos)!r}{at}"
    return node.label or graph.metric


def top_token_label(feature: FeatureId, top_logits: Sequence[tuple[str, float]]) -> str:
    """`#index 'token'`: a feature named by the token it promotes most."""
    return f"#{feature.index} {top_logits[0][0]!r}" if top_logits else f"#{feature.index}"


def graph_data(
    graph: AttributionGraph,
    info: SiteInfo,
    root: str = "",
    *,
    labels: Mapping[FeatureId, str] | None = None,
    layout: Layout = "positions",
) -> dict[str, object]:
    """Nodes and edges of `graph` in the form graph.js draws. Layout "positions": x = token
    position, y = site (`siteRow`), with each node's influence `rank` for pruning; "columns": one
    column per site (`column` = site order). `cluster` and `fill` on clustered nodes."""
    from feature_lens.serve.view import influence_ranks

    site_of_order = {order: site for site, order in info.order.items()}
    orders = sorted({n.order for n in graph.nodes.values()})
    site_row = {order: r for r, order in enumerate(orders)}
    row_labels: list[str] = []
    for order in orders:
        node = next(n for n in graph.nodes.values() if n.order == order)
        row_labels.append(graph.metric if node.kind == "logit" else info.short(node.site))
    ranks = influence_ranks(graph) if layout == "positions" else {}
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
            "label": _label(graph, node, labels, with_pos=layout != "positions"),
            "column": node.order,
            "siteRow": site_row[node.order],
            "pos": -1 if node.pos is None else node.pos,
            "columnLabel": column_label,
            "row": (node.pos if node.pos is not None else -1) * 1e6 - abs(node.effect),
            "kind": node.kind,
            "href": href,
            "value": abs(node.effect),
            "info": "\n".join(detail),
        }
        if node.id in ranks:
            item["rank"] = ranks[node.id]
        if node.cluster is not None:
            item["cluster"] = node.cluster
            item["fill"] = cluster_colour(node.cluster)
        nodes.append(item)
    edges = [{"s": s, "t": t, "w": w} for (s, t), w in graph.edges.items()]
    tokens = graph.prompts[0] if graph.prompts else []
    return {
        "nodes": nodes,
        "edges": edges,
        "tokens": tokens,
        "layout": layout,
        "rows": row_labels,
        "prompts": graph.prompts,
    }


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


def _prompt_switch(graph: AttributionGraph) -> str:
    """A select of the graph's prompts (the graph is their mean; the switch relabels the tokens)."""
    if len(graph.prompts) <= 1:
        prompt = " ".join(graph.prompts[0]) if graph.prompts else ""
        return f'<p class="muted">prompt: <code class="prompt">{esc(prompt)}</code></p>'
    options = "".join(
        f'<option value="{i}">prompt {i}: {esc(" ".join(tokens)[:120])}</option>'
        for i, tokens in enumerate(graph.prompts)
    )
    return (
        f'<p class="muted"><label>tokens of <select id="prompt-switch">{options}</select></label> '
        f"(the graph is the mean over its {len(graph.prompts)} prompts)</p>"
    )


def connectome_page(
    graph: AttributionGraph,
    info: SiteInfo,
    *,
    root: str = "",
    inline_assets: bool = False,
    title: str = "Connectome",
    nav: Sequence[tuple[str, str]] = (),
    labels: Mapping[FeatureId, str] | None = None,
    layout: Layout = "positions",
) -> str:
    """The connectome view's HTML (`root`: the site root relative to the page; `nav`: more
    (text, href) links after the one to the index; `labels`: readable feature names, e.g. their
    top tokens). Layout "positions" puts token positions on x and sites on y, pruned by influence
    (top 80% by default, a slider changes it); "columns" is one column per site."""
    settings = ", ".join(
        f"{k}={v}" for k, v in graph.settings.items() if not isinstance(v, (dict, list))
    )
    links = "".join(f'<a href="{esc(href)}">{esc(text)}</a>' for text, href in nav)
    positions = layout == "positions"
    how = (
        "x is the token position, y the site in forward order; nodes are pruned by influence on "
        "the metric (slider)"
        if positions
        else "Columns are sites in forward order"
    )
    node_control = (
        '<label>nodes <input type="range" id="node-threshold" min="1" max="100" value="80"></label> '
        '<span id="node-label"></span> '
        if positions
        else ""
    )
    body = (
        f'<nav><a href="{root}index.html">index</a>{links}</nav>'
        f"<h1>{esc(title)}: {esc(graph.metric)} <span class='muted'>method {esc(graph.method)}</span></h1>"
        f"{_prompt_switch(graph)}"
        f'<p class="muted">{esc(settings)}</p>'
        f'<p class="muted">{len(graph.nodes)} nodes, {graph.n_edges} edges. {how}; blue edges are '
        "positive, red negative, width by |weight|. Hover for values, click a feature to open its "
        "page.</p>"
        f"{legend(graph, info, root)}"
        f'<div class="controls">{node_control}<label>edge threshold <input type="range" '
        'id="threshold" min="0" max="1000" value="0"></label> <span id="threshold-label"></span></div>'
        '<div class="graph" data-graph="connectome" data-slider="threshold" '
        'data-slider-label="threshold-label" data-node-slider="node-threshold" '
        'data-node-label="node-label" data-prompt-switch="prompt-switch" data-col-width="170"></div>'
        f"{json_script('connectome', graph_data(graph, info, root, labels=labels, layout=layout))}"
    )
    return page(
        f"{title.lower()}: {graph.metric} — feature-lens",
        body,
        root=root,
        inline_assets=inline_assets,
    )
