"""The seed's feature visualisation of matched pairs, as one self-contained HTML page.

The seed (`scripts/match_sae_features.py`) takes the matched pairs with the smallest activation
cosine distance and renders each feature of both checkpoints with SAE-Vis's feature-centric view.
Here the same pairs get, side by side, what lets a reader judge whether the two features are "the
same": for each feature its firing density on the shared tokens, its largest activation, and its
top activating contexts with the firing token highlighted (a window of tokens before it). Every
token string is HTML-escaped; the page has no scripts and no external resources.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True)
class Context:
    """One activating token: `row` and `pos` in the token batch, the activation, the window text."""

    row: int
    pos: int
    value: float
    before: tuple[str, ...]
    token: str


def top_contexts(
    column: Float[Tensor, " n"],
    tokens: Int[Tensor, "batch seq"],
    str_tokens: Sequence[str],
    *,
    k: int = 5,
    window: int = 8,
) -> list[Context]:
    """The `k` largest positive activations of one feature, with their token windows.

    `column` holds one activation per token of `tokens[:, 1:]` in row-major order (BOS dropped, as
    `matching.feature_activations` produces it); `str_tokens[id]` is the text of token `id`.
    """
    seq = tokens.shape[1] - 1
    values = column.detach().double().cpu().numpy()
    if values.shape[0] != tokens.shape[0] * seq:
        raise ValueError(
            f"{values.shape[0]} activations for {tokens.shape[0]} x {seq} non-BOS tokens"
        )
    order = np.argsort(-values, kind="stable")[:k]
    out: list[Context] = []
    for flat in order:
        if values[flat] <= 0:
            break
        row, pos = divmod(int(flat), seq)
        pos += 1  # BOS was dropped
        ids = tokens[row, max(0, pos - window) : pos].tolist()
        out.append(
            Context(
                row=row,
                pos=pos,
                value=float(values[flat]),
                before=tuple(str_tokens[i] for i in ids),
                token=str_tokens[int(tokens[row, pos])],
            )
        )
    return out


@dataclass(frozen=True)
class FeatureCard:
    """What the page shows for one feature."""

    title: str
    density: float
    max_value: float
    contexts: list[Context]


def feature_card(
    title: str,
    column: Float[Tensor, " n"],
    tokens: Int[Tensor, "batch seq"],
    str_tokens: Sequence[str],
    *,
    k: int = 5,
) -> FeatureCard:
    """Density (share of tokens with activation > 0), max and top contexts of one feature."""
    values = column.detach().double()
    return FeatureCard(
        title=title,
        density=float((values > 0).double().mean()),
        max_value=float(values.max()) if values.numel() else 0.0,
        contexts=top_contexts(column, tokens, str_tokens, k=k),
    )


def _card_html(card: FeatureCard) -> str:
    rows = "".join(
        "<tr><td class=v>{:.3f}</td><td>{}<b>{}</b></td></tr>".format(
            c.value, html.escape(" ".join(c.before)) + " ", html.escape(c.token)
        )
        for c in card.contexts
    )
    return (
        f"<div class=card><h3>{html.escape(card.title)}</h3>"
        f"<p>density {card.density:.4f} &middot; max {card.max_value:.3f}</p>"
        f"<table>{rows or '<tr><td>never fires</td></tr>'}</table></div>"
    )


def render_pairs(title: str, pairs: Sequence[tuple[str, FeatureCard, FeatureCard]]) -> str:
    """The HTML page: one row per (caption, earlier feature, later feature)."""
    body = "".join(
        f"<section><h2>{html.escape(caption)}</h2><div class=pair>{_card_html(a)}{_card_html(b)}"
        "</div></section>"
        for caption, a, b in pairs
    )
    style = (
        "body{font-family:sans-serif;margin:1em}.pair{display:flex;gap:1em}"
        ".card{flex:1;border:1px solid #ccc;padding:.5em}td{padding:0 .4em;font-family:monospace}"
        "td.v{text-align:right}b{background:#fd8}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
