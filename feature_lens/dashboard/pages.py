"""The HTML of a feature page and of the index. Pure functions of already-computed data; every
string from the model, tokenizer or prompts is escaped (see `feature_lens.dashboard.html`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from feature_lens.dashboard.data import Example, FeatureData, feature_label, feature_slug
from feature_lens.dashboard.html import esc, fmt, json_script, page, swatch, table
from feature_lens.dashboard.neighbours import Link, Neighbours
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node


@dataclass
class SiteInfo:
    """What pages need to know about the Lens: each site's forward order and layer, and which
    features have pages (links go only to pages that exist)."""

    order: Mapping[str, int]
    layer: Mapping[str, int]
    pages: set[Node] = field(default_factory=set[Node])
    has_connectome: bool = False
    title: str = "feature-lens dashboards"
    clusters: dict[Node, list[tuple[int, int | None]]] = field(
        default_factory=dict[Node, list[tuple[int, int | None]]]
    )
    """Per feature, the (cluster, position) of each of its graph nodes that is in a cluster."""
    cluster_pages: set[int] = field(default_factory=set[int])

    def cluster_href(self, k: int, root: str) -> str | None:
        """Relative link to cluster `k`'s page, or None when the site has none."""
        return f"{root}clusters/{k}.html" if k in self.cluster_pages else None

    def href(self, feature: Node | None, root: str) -> str | None:
        """Relative link to a feature's page, or None when it has none."""
        if feature is None or feature not in self.pages:
            return None
        return f"{root}features/{feature_slug(feature)}.html"

    def short(self, site: str) -> str:
        """Short column label of a site: `L1 resid_post`."""
        if site == "embed":
            return "tokens"
        name = site.rsplit(".", 1)[-1].removeprefix("hook_")
        return f"L{self.layer.get(site, '?')} {name}"


def feature_path(feature: Node) -> str:
    """Path of a feature's page relative to the site root."""
    return f"features/{feature_slug(feature)}.html"


def _example_html(example: Example, max_act: float, index: int) -> str:
    spans: list[str] = []
    for offset, (tok, act) in enumerate(zip(example.tokens, example.acts, strict=True)):
        alpha = 0.0 if max_act <= 0 or act <= 0 else min(1.0, act / max_act)
        is_max = example.start + offset == example.pos
        spans.append(
            f'<span class="tok{" max" if is_max else ""}" title="{esc(fmt(act))}" '
            f'style="background:rgba(255,138,0,{alpha:.3f})">{esc(tok)}</span>'
        )
    return (
        f'<div class="example" data-prompt="{example.prompt}" data-example="{index}">'
        f'<span class="val">{esc(fmt(example.value))}</span>{"".join(spans)}</div>'
    )


def histogram_svg(
    edges: Sequence[float], counts: Sequence[int], unit: str, *, signed: bool = False
) -> str:
    """Bars of `counts` over the bins `edges` (len(counts) + 1), labelled with the outer edges and
    the tallest bar in `unit`s; with `signed`, bars below zero are red and bars above blue."""
    width, height, pad = 330, 120, 18
    top = max(counts) if counts and max(counts) > 0 else 1
    bar = (width - 2 * pad) / max(len(counts), 1)
    rects: list[str] = []
    for i, c in enumerate(counts):
        h = (height - 2 * pad) * c / top
        x, y = pad + i * bar, height - pad - h
        lo, hi = edges[i], edges[i + 1]
        css = (' class="neg"' if hi <= 0 else ' class="pos"' if lo >= 0 else "") if signed else ""
        rects.append(
            f'<rect{css} x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{esc(fmt(lo))} to {esc(fmt(hi))}: {c}</title></rect>"
        )
    low, high = (edges[0], edges[-1]) if edges else (0.0, 0.0)
    labels = (
        f'<text x="{pad}" y="{height - 4}">{esc(fmt(low))}</text>'
        f'<text x="{width - pad}" y="{height - 4}" text-anchor="end">{esc(fmt(high))}</text>'
        f'<text x="{pad}" y="12">{top} {esc(unit)}</text>'
    )
    if signed and low < 0 < high:
        zero = pad + (width - 2 * pad) * (0 - low) / (high - low)
        labels += (
            f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{pad}" y2="{height - pad}" class="zero"/>'
        )
    return (
        f'<svg class="hist{" signed" if signed else ""}" width="{width}" height="{height}" '
        f'role="img">{"".join(rects)}{labels}</svg>'
    )


def _logit_table(rows: Sequence[tuple[str, float]], header: str) -> str:
    cells = [
        [
            f"<code>{esc(repr(tok))}</code>",
            f'<span class="{"pos" if v >= 0 else "neg"}">{esc(fmt(v))}</span>',
        ]
        for tok, v in rows
    ]
    return table([header, "effect"], cells)


def _cluster_line(feature: Node, info: SiteInfo, root: str) -> str:
    by_cluster: dict[int, list[str]] = {}
    for k, pos in info.clusters.get(feature, []):
        by_cluster.setdefault(k, []).append("all" if pos is None else str(pos))
    if not by_cluster:
        return ""
    items: list[str] = []
    for k, positions in sorted(by_cluster.items()):
        href = info.cluster_href(k, root)
        text = f"{swatch(k)}C{k}"
        link = f'<a href="{esc(href)}">{text}</a>' if href else text
        items.append(f"{link} (position {esc(', '.join(positions))})")
    return f'<span class="clusters">cluster {" ".join(items)}</span>'


def _tables_html(data: FeatureData, info: SiteInfo, root: str) -> str:
    tables = data.tables
    if tables is None:
        return ""

    def signed(v: float) -> str:
        return f'<span class="{"pos" if v >= 0 else "neg"}">{esc(fmt(v))}</span>'

    def feature_name(index: int) -> str:
        feature = feature_node(data.feature.site, index)
        href = info.href(feature, root)
        return f'<a href="{esc(href)}">{esc(index)}</a>' if href else esc(index)

    alignment = table(
        ["dim", "W_dec", "% of L1"],
        [[esc(i), signed(v), esc(f"{share:.1%}")] for i, v, share in tables.alignment],
    )
    neurons = table(["dim", "r"], [[esc(i), signed(r)] for i, r in tables.neurons])
    features = table(["feature", "r"], [[feature_name(i), signed(r)] for i, r in tables.features])
    return (
        '<div class="tables"><h2>Feature tables</h2><div class="grid3">'
        f"<div><h3>Neuron alignment</h3>{alignment}</div>"
        f"<div><h3>Correlated neurons</h3>{neurons}</div>"
        f"<div><h3>Correlated features</h3>{features}</div></div>"
        '<p class="muted">largest components of the decoder direction (dimensions of the '
        "SAE's input); Pearson r over the dataset's tokens with each input dimension and with the "
        "other features of this dictionary</p></div>"
    )


def _link_name(link: Link, info: SiteInfo, root: str) -> str:
    if link.kind == "feature":
        feature = link.feature
        assert feature is not None
        href = info.href(feature, root)
        text = esc(feature_label(feature))
        return f'<a href="{esc(href)}">{text}</a>' if href else text
    if link.kind == "error":
        return f"error term at {esc(link.site)}"
    if link.kind == "token":
        return "token embeddings (all positions)"
    return esc(link.site)


def _links_table(links: Sequence[Link], info: SiteInfo, root: str) -> str:
    rows = [
        [
            _link_name(link, info, root),
            esc(info.short(link.site)),
            f'<span class="{"pos" if link.weight >= 0 else "neg"}">{esc(fmt(link.weight))}</span>',
            esc(link.method),
        ]
        for link in links
    ]
    if not rows:
        return '<p class="muted">none found on the prompts used</p>'
    return table(["node", "layer", "weight", "method"], rows)


def _node_id(link: Link) -> str:
    return f"{link.kind}:{link.site}:{'' if link.index is None else link.index}"


def neighbourhood_graph(
    feature: Node, nb: Neighbours, info: SiteInfo, root: str, k: int = 6
) -> dict[str, object]:
    """Graph data (for graph.js) of a feature and its strongest `k` upstream and downstream links."""
    focus_id = f"feature:{feature.site}:{feature.index}"
    nodes: dict[str, dict[str, object]] = {
        focus_id: {
            "id": focus_id,
            "label": str(feature.index),
            "column": info.order.get(feature.site, 0),
            "columnLabel": info.short(feature.site),
            "row": 0,
            "kind": "feature",
            "focus": True,
            "value": 1.0,
            "info": f"{feature_label(feature)} (this page)",
        }
    }
    edges: list[dict[str, object]] = []
    for direction, links in (("up", nb.upstream[:k]), ("down", nb.downstream[:k])):
        for row, link in enumerate(links):
            nid = _node_id(link)
            # Short labels (the column names the site): full ids overlap in 110-px columns.
            label = (
                str(link.feature.index)
                if link.feature
                else ("error" if link.kind == "error" else "tokens")
            )
            name = feature_label(link.feature) if link.feature else f"{label} ({link.site})"
            nodes.setdefault(
                nid,
                {
                    "id": nid,
                    "label": label,
                    "column": info.order.get(link.site, -1),
                    "columnLabel": info.short(link.site),
                    "row": row,
                    "kind": link.kind,
                    "href": info.href(link.feature, root),
                    "value": abs(link.weight),
                    "info": f"{name}\n{link.method}: {fmt(link.weight)}",
                },
            )
            pair = (nid, focus_id) if direction == "up" else (focus_id, nid)
            edges.append({"s": pair[0], "t": pair[1], "w": link.weight})
    return {"nodes": list(nodes.values()), "edges": edges}


def _examples_html(data: FeatureData) -> list[str]:
    """The top activating examples, then examples from intervals of the activation range (first on
    a feature's page)."""
    parts = ["<h2>Top activating examples</h2>"]
    for group in data.groups:
        parts.append(f"<h3>{esc(group.title)}</h3>")
        parts += [_example_html(ex, data.max_act, i) for i, ex in enumerate(group.examples)]
        if not group.examples:
            parts.append('<p class="muted">no examples</p>')
    return parts


def feature_page(
    data: FeatureData,
    nb: Neighbours | None,
    info: SiteInfo,
    *,
    root: str = "../",
    inline_assets: bool = False,
    circuitsvis_props: dict[str, object] | None = None,
) -> str:
    """The HTML of one feature's page."""
    f = data.feature
    nav = f'<nav><a href="{root}index.html">index</a>'
    if info.has_connectome:
        nav += f'<a href="{root}connectome.html">connectome</a>'
    nav += "</nav>"
    stats = (
        '<p class="stats">'
        f"<span>density <b>{esc(f'{data.density:.3%}')}</b> ({data.n_active} of {data.n_tokens} tokens)</span>"
        f"<span>max activation <b>{esc(fmt(data.max_act))}</b></span>"
        f"{_cluster_line(f, info, root)}</p>"
    )
    parts = [
        nav,
        f"<h1>Feature {esc(f.index)} <span class='muted'>{esc(f.site)}</span></h1>",
        stats,
        *_examples_html(data),
        '<div class="grid"><div><h2>Activation histogram</h2>'
        f"{histogram_svg(data.hist_edges, data.hist_counts, 'tokens')}"
        '<p class="muted">positive activations over the dataset; counts sum to the active tokens</p></div>',
        "<div><h2>Direct logit effect</h2>"
        '<p class="muted">((W_dec[i] - mean) * ln_final.w) @ W_U: per unit activation, through the '
        "final LayerNorm's centring and gain with its scale frozen</p>"
        f'<div class="grid">{_logit_table(data.top_logits, "promotes")}{_logit_table(data.bottom_logits, "suppresses")}</div>'
        '<h3 id="logit-histogram">Logit histogram</h3>'
        f"{histogram_svg(data.logit_hist_edges, data.logit_hist_counts, 'tokens', signed=True)}"
        '<p class="muted">the direct logit effect of every token of the vocabulary '
        f"({sum(data.logit_hist_counts)} tokens); blue promoted, red suppressed</p></div></div>",
    ]
    parts.append(_tables_html(data, info, root))
    if nb is not None:
        share = "".join(
            f"<tr><td>{esc(info.short(s))}</td><td class='num'>{esc(f'{v:.1%}')}</td></tr>"
            for s, v in nb.error_share.items()
        )
        parts += [
            '<div class="grid"><div><h2>Upstream (earlier layers)</h2>'
            f"{_links_table(nb.upstream, info, root)}"
            "<h3>Input from SAE error terms</h3>"
            '<p class="muted">the error term\'s share of |upstream weight| at each earlier site</p>'
            f"<table><thead><tr><th>site</th><th class='num'>error share</th></tr></thead><tbody>{share}</tbody></table></div>",
            f"<div><h2>Downstream (later layers)</h2>{_links_table(nb.downstream, info, root)}"
            f"<h3>Logits (exact: summed change when the feature is zeroed)</h3>{_logit_table(nb.logits, 'token')}</div></div>",
            "<div><h2>Neighbourhood</h2>"
            f'<div class="graph" data-graph="neighbourhood" data-col-width="110"></div>'
            f"{json_script('neighbourhood', neighbourhood_graph(f, nb, info, root))}"
            f'<p class="muted">the strongest upstream and downstream links (columns are sites; '
            f"hover for ids and weights), weights averaged over prompts {esc(nb.prompts)} of the "
            "dataset</p></div>",
        ]
    scripts: tuple[str, ...] = ("graph.js",)
    if circuitsvis_props is not None:
        parts.append(
            "<h2>Strongest prompt, all tokens (circuitsvis)</h2>"
            f'<div class="cv" id="cv-top" data-cv="cv-props"></div>{json_script("cv-props", circuitsvis_props)}'
        )
        scripts = ("circuitsvis.js", "graph.js")
    return page(
        f"{feature_label(f)} — feature-lens",
        "\n".join(parts),
        root=root,
        scripts=scripts,
        inline_assets=inline_assets,
    )


def index_page(
    features: Sequence[FeatureData], info: SiteInfo, notes: Sequence[str] = (), *, extra: str = ""
) -> str:
    """The index: one table of every feature with a page (site, label, density, max activation,
    top logits), searchable, filterable by site and sortable by any column (graph.js); `extra`
    (HTML, already escaped: the clusters' table) goes after the connectome link."""
    parts = [f"<h1>{esc(info.title)}</h1>"]
    parts += [f'<p class="muted">{esc(note)}</p>' for note in notes]
    if info.has_connectome:
        parts.append('<p><a href="connectome.html">Open the connectome view</a></p>')
    if extra:
        parts.append(extra)
    if not features:
        parts.append('<p class="muted">no feature pages</p>')
        return page(info.title, "\n".join(parts), root="", scripts=())
    ordered = sorted(features, key=lambda d: (info.order.get(d.feature.site, 0), d.feature.index))
    sites = list(dict.fromkeys(d.feature.site for d in ordered))
    options = "".join(f'<option value="{esc(site)}">{esc(site)}</option>' for site in sites)
    parts.append(
        '<div class="controls"><label>search <input id="feature-search" type="search" '
        'placeholder="feature, label or token"></label> <label>site <select id="feature-site">'
        f'<option value="">all sites</option>{options}</select></label> '
        '<span id="feature-count" class="muted"></span> '
        '<span class="muted">click a column header to sort</span></div>'
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("feature", "site", "label", "density", "max act", "top logits")
    )
    rows: list[str] = []
    for d in ordered:
        f = d.feature
        label = f"{d.top_logits[0][0]!r}" if d.top_logits else ""
        rows.append(
            f'<tr data-site="{esc(f.site)}">'
            f'<td data-sort="{f.index}"><a href="{esc(feature_path(f))}">{esc(feature_label(f))}</a></td>'
            f"<td>{esc(info.short(f.site))}</td><td>{esc(label)}</td>"
            f'<td class="num" data-sort="{d.density!r}">{esc(f"{d.density:.3%}")}</td>'
            f'<td class="num" data-sort="{d.max_act!r}">{esc(fmt(d.max_act))}</td>'
            f"<td>{esc(' '.join(t for t, _ in d.top_logits[:3]))}</td></tr>"
        )
    parts.append(
        f'<table id="feature-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
    return page(info.title, "\n".join(parts), root="", scripts=("graph.js",))
