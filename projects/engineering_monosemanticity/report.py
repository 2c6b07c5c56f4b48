"""Static HTML results browser: every run of every sweep, with the sweep figures beside them.

``build_report(results_dir)`` redraws ``figures/*.png`` from the JSON records and writes
``report.html`` next to them. The page needs no network and no script: images are referenced by
relative path, all text is HTML-escaped, and each run row expands (``<details>``) to show its full
config and its monosemanticity history.

It covers what the seed's app shows: the Table 1 reference; its pages (learning rate: LR1-LR4,
initial bias: B1-B5, GeLU vs ReLU: G1 beside B3, regularisation: RG1) plus every other sweep;
per sweep the fixed settings (the app's "setup"), the training plot (loss, # mono / N and mean
bias against log2 step), final # mono per neuron and per feature against the swept variable (the
app's mono-sweep plot) and, behind a "single-feature activations" toggle, the seed's
single-feature activation plot of runs 0, 2 and 5 of the sweep.

``draw_lr_sweep`` is the seed's learning-rate sweep script: load one sweep by its expected
learning rates, say which runs are missing, and draw its training/bias and activation figures.
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
    sfa_figure,
    sweep_figure,
)
from projects.engineering_monosemanticity.store import load_records, load_sweep
from projects.engineering_monosemanticity.sweeps import LR_VALUES, TABLE1

APP_PAGES = {
    "Learning rate": ["LR1", "LR2", "LR3", "LR4"],
    "Initial bias": ["B1", "B2", "B3", "B4", "B5"],
    "GeLU vs ReLU": ["G1", "B3"],
    "Regularisation": ["RG1"],
}
SFA_RUNS = (0, 2, 5)

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


def _sweep_section(name: str, records: list[Record], figure: str, sfa: str | None) -> str:
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
        + (
            f"<details><summary>single-feature activations</summary>"
            f"<img src='{_e(sfa)}' alt='{_e(name)} single-feature activations'></details>"
            if sfa
            else "<p>(single-feature activations: runs recorded before encoders were kept)</p>"
        )
        + f"<table><tr>{head}</tr>{''.join(rows)}</table>"
    )


def _table1_reference() -> str:
    """Table 1 as the sweeps define it (paper sizes; 'var' marks the swept columns)."""
    cols = ["task", "nonlinearity", "sample_kind", "k", "eps", "learning_rate", "decay",
            "initial_bias", "reg"]  # fmt: skip
    head = "".join(f"<th>{_e(c)}</th>" for c in ["batch", *cols])
    rows = []
    for sweep in TABLE1.values():
        cells = "".join(
            f"<td>{_e('var' if c in sweep.variables else _fmt(sweep.fixed[c]))}</td>" for c in cols
        )
        rows.append(f"<tr><td class=l>{_e(sweep.name)}</td>{cells}</tr>")
    return (
        "<details><summary>Table 1 reference (paper sizes: N=512, m=64)</summary>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table></details>"
    )


def _sfa_figure_path(records: list[Record], name: str, fig_dir: Path) -> str | None:
    """Draw the sweep's single-feature activation figure if its runs kept their encoders."""
    with_encoder = [r for r in records if "final_encoder" in r]
    if len(with_encoder) < len(records) or not records:
        return None
    path = save(sfa_figure(records, SFA_RUNS, title=name), fig_dir / f"{_slug(name)}_sfa.png")
    return f"figures/{path.name}"


def draw_lr_sweep(
    results_dir: Path, sweep_name: str, values: list[float] | None = None
) -> tuple[list[Path], list[float]]:
    """The seed's learning-rate sweep script for one sweep under ``results_dir``.

    Loads the runs at ``values`` (default: the Table 1 learning rates), and draws the training /
    final-value / bias figure and, if the runs kept their encoders, the single-feature activation
    figure of runs 0, 2 and 5. Returns the figure paths and the learning rates with no run.
    """
    wanted = list(LR_VALUES) if values is None else values
    records, missing = load_sweep(results_dir, sweep_name, "learning_rate", wanted)
    if not records:
        raise FileNotFoundError(
            f"no runs of {sweep_name!r} at learning rates {wanted} under {results_dir}"
        )
    fig_dir = Path(results_dir) / "figures"
    slug = _slug(sweep_name)
    paths = [save(sweep_figure(records, sweep_name), fig_dir / f"{slug}_lr_sweep.png")]
    if all("final_encoder" in r for r in records):
        fig = sfa_figure(records, SFA_RUNS, title=sweep_name)
        paths.append(save(fig, fig_dir / f"{slug}_lr_sweep_sfa.png"))
    return paths, missing


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
        sfa = _sfa_figure_path(by_sweep[name], name, fig_dir)
        sections.append(_sweep_section(name, by_sweep[name], f"figures/{path.name}", sfa))

    nav = "".join(f"<a href='#{_e(_slug(n))}'>{_e(n)}</a>" for n in names)
    pages = []
    for page_name, batches in APP_PAGES.items():
        links = [
            f"<a href='#{_e(_slug(n))}'>{_e(n)}</a>"
            for b in batches
            for n in names
            if n.split("/")[-1] == b
        ]
        pages.append(f"<li>{_e(page_name)}: {' '.join(links) or 'no runs yet'}</li>")
    n_runs = sum(len(v) for v in by_sweep.values())
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p>{n_runs} runs in {len(names)} sweeps. A neuron is monosemantic when its largest "
        "single-feature response exceeds 0.999 of the sum of its responses; "
        "'frac_mono_of_features' is the paper's # mono neurons / # features.</p>"
        f"{_table1_reference()}<h2>The seed app's pages</h2><ul>{''.join(pages)}</ul>"
        f"<nav>All sweeps: {nav}</nav>{''.join(overviews)}{''.join(sections)}</body></html>"
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
