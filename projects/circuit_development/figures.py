"""Figures of the committed results (`results/*.csv`): each function draws one figure from the
CSV rows and returns it; `draw_all` saves them all as PNG under `results/figures/`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from feature_lens.zoo.tasks import TASKS

COLOURS = {"agreement": "C0", "ioi": "C1", "induction": "C2", "brackets": "C3"}
SITE_COLOURS = {0: "C4", 1: "C5", 2: "C6"}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """CSV rows with numbers parsed (int where possible, else float; strings kept)."""

    def parse(value: str) -> Any:
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
        return value

    with path.open() as handle:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _step_axis(ax: Any) -> None:
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(0, 5200)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)


def _site_layer(site: str) -> int:
    return int(site.split(".")[1])


def accuracy_figure(accuracy: list[dict[str, Any]], checkpoints: list[int]) -> Figure:
    """Top-1 accuracy and clean logit diff of every task vs step; checkpoints as ticks on top."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    steps = [r["step"] for r in accuracy]
    for task in TASKS:
        axes[0].plot(
            steps, [r[f"{task}_accuracy"] for r in accuracy], color=COLOURS[task], label=task
        )
        axes[1].plot(steps, [r[f"{task}_logit_diff"] for r in accuracy], color=COLOURS[task])
    axes[2].plot(steps, [r["loss"] for r in accuracy], color="k")
    for ax, label in zip(
        axes, ("top-1 accuracy", "logit diff (nats)", "held-out loss"), strict=True
    ):
        _step_axis(ax)
        ax.set_ylabel(label)
        for step in checkpoints:
            ax.axvline(step, color="grey", lw=0.5, alpha=0.5)
    axes[0].legend(fontsize=8)
    fig.suptitle("Task accuracy over training (grey: saved checkpoints)")
    fig.tight_layout()
    return fig


def matching_figure(matching: list[dict[str, Any]], thresholds: list[float]) -> Figure:
    """Fraction of the final SAE's live features matched at each checkpoint, per site, for both
    similarities and every threshold; the dashed line is a second-seed SAE on the final model."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    styles = ["-", "--", ":"]
    for ax, kind in zip(axes, ("activation", "decoder"), strict=True):
        for site in sorted({r["site"] for r in matching}):
            layer = _site_layer(site)
            for style, threshold in zip(styles, thresholds, strict=False):
                rows = [
                    r
                    for r in matching
                    if r["site"] == site
                    and r["similarity"] == kind
                    and r["reference"] == "final"
                    and r["threshold"] == threshold
                ]
                ax.plot(
                    [r["step"] for r in rows],
                    [r["matched_fraction"] for r in rows],
                    style,
                    marker="o",
                    ms=3,
                    color=SITE_COLOURS[layer],
                    label=f"layer {layer}, ≥{threshold}",
                )
                control = [
                    r["matched_fraction"]
                    for r in matching
                    if r["site"] == site
                    and r["similarity"] == kind
                    and r["reference"] == "control"
                    and r["threshold"] == threshold
                ]
                if control and threshold == thresholds[len(thresholds) // 2]:
                    ax.axhline(control[0], color=SITE_COLOURS[layer], lw=0.8, ls="-.", alpha=0.7)
        _step_axis(ax)
        ax.set_title(f"{kind} similarity to the final SAE")
    axes[0].set_ylabel("fraction of final live features matched")
    axes[1].legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def circuits_figure(
    circuits: list[dict[str, Any]],
    accuracy: list[dict[str, Any]],
    size: int,
    control: list[dict[str, Any]] | None = None,
    min_span: float = 1.0,
) -> Figure:
    """Per task: accuracy, the circuit's faithfulness, and the share of the final circuit already
    in the circuit (through the matching), against training step.

    Faithfulness is a ratio with denominator m(full) - m(empty); where that span is below
    `min_span` nats (an untrained model) it is noise, drawn as hollow markers clipped to [-0.2, 1.2].
    The dotted line is the share of the final circuit that a second-seed SAE's circuit recovers
    on the same final model: the ceiling of "present"."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharey=True)
    steps = [r["step"] for r in accuracy]
    for ax, task in zip(axes, TASKS, strict=True):
        rows = [r for r in circuits if r["task"] == task]
        ax.plot(
            steps, [r[f"{task}_accuracy"] for r in accuracy], color="grey", label="top-1 accuracy"
        )
        key = f"faithfulness_{size}"
        ax.plot(
            [r["step"] for r in rows],
            [max(-0.2, min(1.2, r[key])) for r in rows],
            "-",
            color=COLOURS[task],
            lw=0.8,
        )
        solid = [r for r in rows if r["full_metric"] - r["empty_metric"] >= min_span]
        hollow = [r for r in rows if r["full_metric"] - r["empty_metric"] < min_span]
        ax.plot(
            [r["step"] for r in solid],
            [max(-0.2, min(1.2, r[key])) for r in solid],
            "o",
            color=COLOURS[task],
            label=f"faithfulness ({size} nodes)",
        )
        ax.plot(
            [r["step"] for r in hollow],
            [max(-0.2, min(1.2, r[key])) for r in hollow],
            "o",
            mfc="none",
            color=COLOURS[task],
            label=f"  (span < {min_span:g} nat)",
        )
        ax.plot(
            [r["step"] for r in rows],
            [r["final_circuit_present"] for r in rows],
            "s--",
            color="k",
            ms=3,
            label="final circuit present",
        )
        ceiling = [r["final_circuit_present"] for r in control or [] if r["task"] == task]
        if ceiling:
            ax.axhline(ceiling[0], color="k", ls=":", lw=0.8, label="second-seed SAE ceiling")
        _step_axis(ax)
        ax.set_title(task)
    axes[0].set_ylim(-0.25, 1.25)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def sae_figure(saes: list[dict[str, Any]], live: list[dict[str, Any]]) -> Figure:
    """SAE fraction of variance explained and live-feature fraction vs step, per site."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for site in sorted({r["site"] for r in saes}):
        colour = SITE_COLOURS[_site_layer(site)]
        rows = [r for r in saes if r["site"] == site and not r["control"]]
        axes[0].plot(
            [r["step"] for r in rows], [r["fve"] for r in rows], "o-", color=colour, label=site
        )
        rows = [r for r in live if r["site"] == site and not r["control"]]
        axes[1].plot(
            [r["step"] for r in rows], [r["live_fraction"] for r in rows], "o-", color=colour
        )
    for ax, label in zip(
        axes, ("FVE (held-out)", "live fraction (≥8 of shared tokens)"), strict=True
    ):
        _step_axis(ax)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_all(
    results: Path, *, circuit_size: int = 64, thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
) -> list[Path]:
    """Draw every figure from the CSVs in `results` into `results/figures/`; return the paths."""
    out = results / "figures"
    out.mkdir(parents=True, exist_ok=True)
    accuracy = read_rows(results / "accuracy.csv")
    circuits = read_rows(results / "circuits.csv")
    checkpoints = sorted({r["step"] for r in circuits})
    figures = {
        "accuracy.png": accuracy_figure(accuracy, checkpoints),
        "matching.png": matching_figure(read_rows(results / "matching.csv"), list(thresholds)),
        "circuits.png": circuits_figure(
            circuits, accuracy, circuit_size, read_rows(results / "circuits_control.csv")
        ),
        "saes.png": sae_figure(
            read_rows(results / "saes.csv"), read_rows(results / "live_features.csv")
        ),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        paths.append(out / name)
    return paths
