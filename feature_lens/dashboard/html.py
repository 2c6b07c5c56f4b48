"""HTML building blocks. Every piece of text that reaches a page goes through `esc` (html.escape,
quotes included) or `json_script` (JSON with `<`, `>`, `&` and line separators escaped, so no string
inside it can close the `<script>` element or open markup)."""

from __future__ import annotations

import base64
import colorsys
import hashlib
import html
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

ASSET_NAMES = ("style.css", "graph.js", "circuitsvis.js")


def esc(value: object) -> str:
    """Text (or any value's str) escaped for use in HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def json_text(data: Any) -> str:
    """JSON that is safe inside `<script type="application/json">`."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def json_script(element_id: str, data: Any) -> str:
    """A `<script type="application/json">` element holding `data` (read with JSON.parse)."""
    return f'<script type="application/json" id="{esc(element_id)}">{json_text(data)}</script>'


def asset_text(name: str) -> str:
    """A shared asset's text: the hand-written CSS/JS of this package, or circuitsvis's bundle read
    from the installed package (its local source; the CDN is never referenced)."""
    if name == "circuitsvis.js":
        import circuitsvis

        bundle = resources.files(circuitsvis).joinpath("dist", "cdn", "iife.js").read_text("utf-8")
        # The source-map comment would point at a file we do not ship.
        return "\n".join(
            line for line in bundle.splitlines() if not line.startswith("//# sourceMappingURL")
        )
    return resources.files("feature_lens.dashboard").joinpath("assets", name).read_text("utf-8")


def content_security_policy(
    inline_scripts: Sequence[str] = (), inline_styles: Sequence[str] = ()
) -> str:
    """The Content-Security-Policy of every feature-lens page (the one place it is built).

    Scripts run only if they are one of `inline_scripts` (allowed by their sha256 hash) or were
    added by such a script (`'strict-dynamic'`): no `'unsafe-inline'`, no `'unsafe-eval'`, no
    `'self'` and no `file:`, because on a `file://` page `'self'` and `file:` match every file on the
    disk. An injected `<script>`, `<script src=...>` or `on...=` handler therefore never runs. Pages
    on disk carry one hashed loader (`script_loader`) that adds the bundled assets; notebook views
    inline the assets and hash each. Styles: the linked sheet (`'self'`), `inline_styles` by hash,
    and `style` attributes (token highlight colours; CSS cannot run script). Nothing is fetched from
    the network: no images but `data:`, no connections, fonts, frames, forms, objects or `<base>`.
    """
    scripts = " ".join(csp_hash(s) for s in inline_scripts)
    styles = "".join(f" {csp_hash(s)}" for s in inline_styles)
    return (
        "default-src 'none'; "
        + (f"script-src 'strict-dynamic' {scripts}; " if scripts else "script-src 'none'; ")
        + f"style-src 'self'{styles}; style-src-attr 'unsafe-inline'; img-src data:; "
        "connect-src 'none'; font-src 'none'; frame-src 'none'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'"
    )


def csp_hash(text: str) -> str:
    """The CSP source (`'sha256-...'`) that allows the inline script or style `text`."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def script_loader(urls: Sequence[str]) -> str:
    """The inline code that adds the scripts `urls` in order (its hash goes in the CSP; scripts it
    adds are trusted through `'strict-dynamic'`). Script elements written into the markup would be
    blocked: on `file://` only a hash can tell our files from any other file on the disk."""
    return (
        f"{json_text(list(urls))}.forEach(function (src) {{"
        ' var s = document.createElement("script"); s.src = src; s.async = false;'
        " document.body.appendChild(s); });"
    )


def page(
    title: str,
    body: str,
    *,
    root: str,
    scripts: tuple[str, ...] = ("graph.js",),
    inline_assets: bool = False,
) -> str:
    """A whole HTML document. Assets are linked relative to the site root (`root`, e.g. "../"), or
    inlined when `inline_assets` (notebooks). The CSP (`content_security_policy`) allows only our
    own scripts and forbids every network load."""
    if inline_assets:
        css = asset_text("style.css")
        codes = [_inline_js(asset_text(s)) for s in scripts]
        csp = content_security_policy(codes, [css])
        style = f"<style>{css}</style>"
        code = "".join(f"<script>{c}</script>" for c in codes)
    else:
        loader = script_loader([f"{root}assets/{s}" for s in scripts]) if scripts else ""
        csp = content_security_policy([loader] if loader else [])
        style = f'<link rel="stylesheet" href="{esc(root)}assets/style.css">'
        code = f"<script>{loader}</script>" if loader else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>{style}</head>\n<body>\n{body}\n{code}\n</body></html>\n"
    )


def _inline_js(code: str) -> str:
    return code.replace("</script", "<\\/script")


def table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    """A table; `header` is escaped, `rows` cells must already be HTML (escaped by the caller)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def fmt(value: float) -> str:
    """A number for display: 4 significant digits."""
    return f"{value:.4g}"


# Tableau-10, the colours people read as distinct first; more clusters get hues by golden angle.
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


def cluster_colour(k: int) -> str:
    """The fill colour of cluster `k` (`#rrggbb`), the same on every page and in the graphs."""
    if 0 <= k < len(_PALETTE):
        return _PALETTE[k]
    hue = (k * 0.618033988749895) % 1.0
    r, g, b = colorsys.hls_to_rgb(hue, 0.62, 0.55)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def swatch(k: int) -> str:
    """A small square in cluster `k`'s colour."""
    return f'<span class="swatch" style="background:{cluster_colour(k)}"></span>'
