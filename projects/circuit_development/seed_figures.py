"""Figures of the seed-settings run (`results/seed_run/*.csv`), saved under its `figures/`:
the seed's matched-fraction curves beside ours, the seed's similarity histograms through
training, and how circuit edges persist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from projects.circuit_development.figures import COLOURS, read_rows


def _steps_axis(ax: Any, xmax: int) -> None:
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, xmax * 1.05)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)


def matching_figure(rows: list[dict[str, Any]]) -> Figure:
    """Matched fraction vs step: one row per site, the seed's recipe left, ours right."""
    sites = sorted({r["site"] for r in rows})
    fig, axes = plt.subplots(len(sites), 2, figsize=(11, 3.3 * len(sites)), squeeze=False)
    xmax = max(r["step"] for r in rows)
    for i, site in enumerate(sites):
        for j, recipe in enumerate(("seed", "project")):
            ax = axes[i][j]
            mine = [r for r in rows if r["site"] == site and r["recipe"] == recipe]
            for k, t in enumerate(sorted({r["threshold"] for r in mine})):
                line = sorted(
                    (r["step"], r["matched_fraction"])
                    for r in mine
                    if r["threshold"] == t and not r["control"]
                )
                ax.plot(*zip(*line, strict=True), marker=".", color=f"C{k}", label=f"{t:g}")
                ctrl = [r["matched_fraction"] for r in mine if r["threshold"] == t and r["control"]]
                if ctrl:
                    ax.axhline(ctrl[0], color=f"C{k}", ls=":", lw=1)
            _steps_axis(ax, xmax)
            ax.set_ylim(0, 1)
            kind = "cosine distance <=" if recipe == "seed" else "correlation >="
            ax.set_title(f"{site} - {recipe} recipe", fontsize=9)
            ax.set_ylabel("fraction matched to last")
            ax.legend(title=kind, fontsize=7, title_fontsize=7)
    fig.suptitle("Features matched to the last checkpoint (dotted: second-seed SAE on it)")
    fig.tight_layout()
    return fig


def histogram_figure(rows: list[dict[str, Any]]) -> Figure:
    """The seed's histograms: per site and similarity kind, log(1 + count) over step x bin."""
    sites = sorted({r["site"] for r in rows})
    fig, axes = plt.subplots(len(sites), 2, figsize=(11, 3.3 * len(sites)), squeeze=False)
    for i, site in enumerate(sites):
        for j, kind in enumerate(("activation", "decoder")):
            ax = axes[i][j]
            mine = [r for r in rows if r["site"] == site and r["kind"] == kind and not r["control"]]
            steps = sorted({r["step"] for r in mine})
            bins = sorted({r["bin_lo"] for r in mine})
            grid = np.zeros((len(bins), len(steps)))
            for r in mine:
                grid[bins.index(r["bin_lo"]), steps.index(r["step"])] = r["count"]
            image = ax.imshow(
                np.log1p(grid),
                origin="lower",
                aspect="auto",
                extent=(-0.5, len(steps) - 0.5, 0, 1),
                cmap="plasma",
            )
            ax.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=90, fontsize=7)
            ax.set_xlabel("checkpoint (step)")
            ax.set_ylabel(f"{kind} cosine similarity")
            ax.set_title(f"{site}: {kind} similarity to the last", fontsize=9)
            fig.colorbar(image, ax=ax, label="log(1 + features)")
    fig.tight_layout()
    return fig


def edges_figure(rows: list[dict[str, Any]]) -> Figure:
    """Edge persistence to the last circuit vs step, per task (dotted: second-seed control); the
    last checkpoint against itself (1 by construction) is left out."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    xmax = max(r["step"] for r in rows)
    keys = (
        ("persisted", "top-32 edges persisted (all kinds)"),
        ("feature_edges_persisted", "top-32 feature->feature edges persisted"),
        ("weighted_jaccard", "weighted Jaccard of |edge weights|"),
    )
    for task in sorted({r["task"] for r in rows}):
        mine = sorted(
            (r for r in rows if r["task"] == task and not r["control"] and r["step"] != xmax),
            key=lambda r: r["step"],
        )
        ctrl = [r for r in rows if r["task"] == task and r["control"]]
        colour = COLOURS.get(task, "k")
        for ax, (key, _) in zip(axes, keys, strict=True):
            ax.plot(
                [r["step"] for r in mine],
                [r[key] for r in mine],
                marker="o",
                color=colour,
                label=task,
            )
            if ctrl:
                ax.axhline(ctrl[0][key], color=colour, ls=":", lw=1)
    for ax, (_, label) in zip(axes, keys, strict=True):
        if min(r["step"] for r in rows) > 0:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks([300, 500, 1000, 2000, 3000], ["300", "500", "1000", "2000", "3000"])
        else:  # a step-0 circuit cannot sit on a log axis
            ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Circuit edges of each checkpoint carried to the last one (dotted: control SAE)")
    fig.tight_layout()
    return fig


def draw_seed_figures(results: Path) -> list[Path]:
    """Draw every figure whose CSV exists; return the PNG paths written."""
    out = results / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, draw in (
        ("seed_matching", matching_figure),
        ("seed_histograms", histogram_figure),
        ("seed_edges", edges_figure),
    ):
        csv_path = results / f"{name}.csv"
        if not csv_path.is_file():
            continue
        fig = draw(read_rows(csv_path))
        path = out / f"{name}.png"
        tmp = out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=100, metadata={"Software": None})
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written
