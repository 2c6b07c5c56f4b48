"""Static HTML results browser: every run of every sweep, with the sweep figures beside them.

``build_report(results_dir)`` redraws ``figures/*.png`` from the JSON records and writes
``report.html`` next to them. The page needs no network and no script: images are referenced by
relative path, all text is HTML-escaped, and each run row expands (``<details>``) to show its full
config and its monosemanticity history.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from projects.engineering_monosemanticity.figures import (
    Record,
    overview_figure,
    save,
    sweep_figure,
)
from projects.engineering_monosemanticity.store import load_records
from projects.engineering_monosemanticity.sweeps import TABLE1

OVERVIEW_GROUPS = {
    "learning rate": ["LR1", "LR2", "LR3", "LR4", "RP1", "LR5"],
    "width k": ["K0", "K1", "K2"],
    "bias offset": ["B1", "B2", "B3", "B4", "B5"],
    "feature probability": ["E1", "E2", "E3", "E4"],
    "regularisation / decay": ["RG1", "D1"],
}

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3} td.l{text-align:left}
img{max-width:100%;border:1px solid #ddd}
pre{font-size:11px;background:#f8f8f8;padding:4px;white-space:pre-wrap}
nav a{margin-right:.6em}
"""


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: object) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _sweep_section(name: str, records: list[Record], figure: str) -> str:
    batch = name.rsplit("/", maxsplit=1)[-1]
    sweep = TABLE1.get(batch)
    desc = sweep.description if sweep else "custom sweep"
    svars = list(records[0]["sweep_vars"])
    fixed = {k: v for k, v in records[0]["config"].items() if k not in svars}
    rows = []
    cols = ["n_mono", "frac_mono_of_features", "frac_mono_of_neurons", "loss", "mean_bias"]
    for r in sorted(records, key=lambda r: [r["config"][v] for v in svars]):
        h = r["history"]
        history = " ".join(
            f"{s}:{n}" for s, n in zip(h["snapshot_steps"], h["n_mono"], strict=True)
        )
        cells = "".join(f"<td>{_e(_fmt(r['config'][v]))}</td>" for v in svars)
        cells += "".join(f"<td>{_e(_fmt(r['final'][c]))}</td>" for c in cols)
        details = (
            f"<details><summary>{_e(Path(r['path']).name)}</summary>"
            f"<pre>{_e(json.dumps(r['config'], indent=1))}\n"
            f"# mono by step: {_e(history)}\nruntime {_e(r.get('runtime_s'))} s "
            f"on {_e(r.get('device', '?'))}</pre></details>"
        )
        rows.append(f"<tr>{cells}<td>{_e(r.get('runtime_s'))}</td><td class=l>{details}</td></tr>")
    head = "".join(f"<th>{_e(v)}</th>" for v in [*svars, *cols, "runtime s", "run"])
    return (
        f"<h2 id='{_e(_slug(name))}'>{_e(name)}: {_e(desc)}</h2>"
        f"<p>fixed: {_e(', '.join(f'{k}={_fmt(v)}' for k, v in fixed.items()))}</p>"
        f"<img src='{_e(figure)}' alt='{_e(name)} figure'>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def build_report(results_dir: Path, title: str = "Engineering monosemanticity sweeps") -> Path:
    """Draw all figures from the records under ``results_dir`` and write ``report.html`` there."""
    results_dir = Path(results_dir)
    fig_dir = results_dir / "figures"
    by_sweep: dict[str, list[Record]] = defaultdict(list)
    for r in load_records(results_dir):
        by_sweep[r["sweep"]].append(r)
    order = {name: i for i, name in enumerate(TABLE1)}
    names = sorted(by_sweep, key=lambda n: (n.split("/")[0], order.get(n.split("/")[-1], 99), n))

    sections, overviews = [], []
    for preset in sorted({n.split("/")[0] for n in names if "/" in n}):
        groups = {
            g: {b: by_sweep.get(f"{preset}/{b}", []) for b in batches}
            for g, batches in OVERVIEW_GROUPS.items()
        }
        groups = {g: bs for g, bs in groups.items() if any(bs.values())}
        if groups:
            path = save(
                overview_figure(groups, f"preset {preset}"), fig_dir / f"overview_{preset}.png"
            )
            overviews.append(
                f"<h2>Overview: preset {_e(preset)}</h2><img src='figures/{_e(path.name)}'>"
            )
    for name in names:
        path = save(sweep_figure(by_sweep[name], name), fig_dir / f"{_slug(name)}.png")
        sections.append(_sweep_section(name, by_sweep[name], f"figures/{path.name}"))

    nav = "".join(f"<a href='#{_e(_slug(n))}'>{_e(n)}</a>" for n in names)
    n_runs = sum(len(v) for v in by_sweep.values())
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p>{n_runs} runs in {len(names)} sweeps. A neuron is monosemantic when its largest "
        "single-feature response exceeds 0.999 of the sum of its responses; "
        "'frac_mono_of_features' is the paper's # mono neurons / # features.</p>"
        f"<nav>{nav}</nav>{''.join(overviews)}{''.join(sections)}</body></html>"
    )
    out = results_dir / "report.html"
    fd, tmp = tempfile.mkstemp(dir=results_dir, prefix=".tmp-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, out)
    return out


def markdown_summary(results_dir: Path) -> str:
    """One markdown line per sweep: swept value -> final # mono / N (and loss), for READMEs."""
    by_sweep: dict[str, list[Record]] = defaultdict(list)
    for r in load_records(Path(results_dir)):
        by_sweep[r["sweep"]].append(r)
    lines = ["| sweep | swept | value: # mono / N (final loss) |", "|---|---|---|"]
    for name in sorted(by_sweep):
        records = by_sweep[name]
        svars = list(records[0]["sweep_vars"])
        cells = []
        for r in sorted(records, key=lambda r: [r["config"][v] for v in svars]):
            key = ",".join(f"{r['config'][v]:g}" for v in svars)
            cells.append(
                f"{key}: {r['final']['frac_mono_of_features']:.2f} ({r['final']['loss']:.3g})"
            )
        lines.append(f"| {name} | {', '.join(svars)} | {'; '.join(cells)} |")
    return "\n".join(lines)
