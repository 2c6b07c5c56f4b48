"""The dashboard views inline in Jupyter: each view is the same HTML as on disk, with its CSS and
JavaScript inlined, shown in a sandboxed `<iframe srcdoc>` so page scripts and styles stay isolated
from the notebook (and work offline: nothing is loaded from anywhere)."""

from __future__ import annotations

from feature_lens.dashboard.connectome import connectome_page
from feature_lens.dashboard.data import feature_label, parse_feature
from feature_lens.dashboard.html import esc
from feature_lens.dashboard.pages import feature_page
from feature_lens.dashboard.site import Dashboard
from feature_lens.graph import AttributionGraph
from feature_lens.graph.node import Node


class InlineView:
    """An HTML document that Jupyter renders inline (`_repr_html_`)."""

    def __init__(self, document: str, height: int = 720) -> None:
        self.document = document
        self.height = height

    def _repr_html_(self) -> str:
        return (
            f'<iframe srcdoc="{esc(self.document)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd"></iframe>'
        )

    def __html__(self) -> str:
        return self._repr_html_()


def show_feature(dashboard: Dashboard, feature: Node | str, *, height: int = 900) -> InlineView:
    """A feature's page from a built dashboard, inline. Links to other pages do not navigate (the
    view is sandboxed); open the folder for browsing."""
    fid = parse_feature(feature) if isinstance(feature, str) else feature
    if fid not in dashboard.features:
        from feature_lens.errors import InputError

        raise InputError(
            f"{feature_label(fid)} has no page in this dashboard; pass one of its features"
        )
    html = feature_page(
        dashboard.features[fid], dashboard.neighbours.get(fid), dashboard.info, inline_assets=True
    )
    return InlineView(html, height)


def show_connectome(
    graph: AttributionGraph, dashboard: Dashboard | None = None, *, height: int = 720
) -> InlineView:
    """The connectome view of `graph`, inline."""
    from feature_lens.dashboard.pages import SiteInfo

    info = dashboard.info if dashboard is not None else SiteInfo({}, {})
    if dashboard is None:
        for node in graph.nodes.values():
            info.order.setdefault(node.site, node.order)  # type: ignore[attr-defined]
            info.layer.setdefault(node.site, node.layer)  # type: ignore[attr-defined]
    return InlineView(connectome_page(graph, info, inline_assets=True), height)
