"""The connectome view: an attribution graph as a layered graph (sites as columns, in forward
order), edges coloured by sign and sized by |weight|, a threshold slider, hover for values, and
clicks that open feature pages."""

from __future__ import annotations

from feature_lens.dashboard.data import FeatureId
from feature_lens.dashboard.html import esc, fmt, json_script, page
from feature_lens.dashboard.pages import SiteInfo
from feature_lens.graph import AttributionGraph, NodeRecord


def _token(graph: AttributionGraph, pos: int | None) -> str:
    if pos is None or not graph.prompts or pos >= len(graph.prompts[0]):
        return ""
    return graph.prompts[0][pos]


def _label(graph: AttributionGraph, node: NodeRecord) -> str:
    at = "" if node.pos is None else f"@{node.pos}"
    if node.kind == "feature":
        return f"{node.index}{at}"
    if node.kind == "error":
        return f"err{at}"
    if node.kind == "token":
        return f"{_token(graph, node.pos)!r}{at}"
    return node.label or graph.metric


def graph_data(graph: AttributionGraph, info: SiteInfo, root: str = "") -> dict[str, object]:
    """Nodes and edges of `graph` in the form graph.js draws (`column` = site order)."""
    nodes: list[dict[str, object]] = []
    for node in graph.nodes.values():
        feature = (
            FeatureId(node.site, node.index)
            if node.kind == "feature" and node.index is not None
            else None
        )
        column_label = graph.metric if node.kind == "logit" else info.short(node.site)
        token = _token(graph, node.pos)
        detail = [node.id]
        if token:
            detail.append(f"token {token!r} (prompt 0)")
        detail.append(f"activation {fmt(node.activation)}")
        detail.append(f"effect on {graph.metric} {fmt(node.effect)}")
        nodes.append(
            {
                "id": node.id,
                "label": _label(graph, node),
                "column": node.order,
                "columnLabel": column_label,
                "row": (node.pos if node.pos is not None else -1) * 1e6 - abs(node.effect),
                "kind": node.kind,
                "href": info.href(feature, root),
                "value": abs(node.effect),
                "info": "\n".join(detail),
            }
        )
    edges = [{"s": s, "t": t, "w": w} for (s, t), w in graph.edges.items()]
    tokens = graph.prompts[0] if graph.prompts else []
    return {"nodes": nodes, "edges": edges, "tokens": tokens}


def connectome_page(
    graph: AttributionGraph, info: SiteInfo, *, root: str = "", inline_assets: bool = False
) -> str:
    """The connectome view's HTML."""
    settings = ", ".join(
        f"{k}={v}" for k, v in graph.settings.items() if not isinstance(v, (dict, list))
    )
    prompt = " ".join(graph.prompts[0]) if graph.prompts else ""
    body = (
        f'<nav><a href="{root}index.html">index</a></nav>'
        f"<h1>Connectome: {esc(graph.metric)} <span class='muted'>method {esc(graph.method)}</span></h1>"
        f'<p class="muted">prompt 0 of {len(graph.prompts)}: <code class="prompt">{esc(prompt)}</code></p>'
        f'<p class="muted">{esc(settings)}</p>'
        f'<p class="muted">{len(graph.nodes)} nodes, {len(graph.edges)} edges. Columns are sites in '
        "forward order; blue edges are positive, red negative, width by |weight|. Hover for values, "
        "click a feature to open its page.</p>"
        '<div class="controls"><label>edge threshold <input type="range" id="threshold" min="0" '
        'max="1000" value="0"></label> <span id="threshold-label"></span></div>'
        '<div class="graph" data-graph="connectome" data-slider="threshold" '
        'data-slider-label="threshold-label" data-col-width="170"></div>'
        f"{json_script('connectome', graph_data(graph, info, root))}"
    )
    return page(
        f"connectome: {graph.metric} — feature-lens", body, root=root, inline_assets=inline_assets
    )
