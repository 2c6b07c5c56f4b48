"""Figures of a sweep, after the paper's: training curves, final values vs the swept variable,
bias distributions; plus an overview comparing related batches.

All functions take run records as written by ``store.make_record`` (plain dicts), so figures can
be redrawn from the JSON files alone.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import colors
from matplotlib.figure import Figure
from PIL import Image

from projects.engineering_monosemanticity.activations import record_activations, sfa_image

Record = dict[str, Any]

NICE = {
    "learning_rate": "learning rate",
    "initial_bias": "initial bias offset",
    "k": "k (neurons)",
    "decay": "bias decay rate",
    "eps": "feature probability eps",
    "reg": "L1 strength",
}
LINESTYLES = ("-", "--", ":", "-.")


def _value(record: Record, var: str) -> float:
    return float(record["config"][var])


def _log_scale(values: Sequence[float]) -> bool:
    return min(values) > 0 and max(values) / min(values) >= 8


def _smooth(y: np.ndarray, window: int = 8) -> np.ndarray:
    if len(y) < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


def _colour_map(values: Sequence[float]) -> tuple[colors.Normalize, Any]:
    vals = np.log10(values) if _log_scale(values) else np.asarray(values, dtype=float)
    lo, hi = float(vals.min()), float(vals.max())
    span = hi - lo or 1.0
    norm = colors.Normalize(vmin=lo - 0.3 * span, vmax=hi + 0.05 * span)
    return norm, plt.get_cmap("viridis")


def _colour(record: Record, var: str, all_values: Sequence[float]) -> Any:
    norm, cmap = _colour_map(all_values)
    v = _value(record, var)
    return cmap(norm(np.log10(v) if _log_scale(all_values) else v))


def sweep_figure(records: Sequence[Record], title: str) -> Figure:
    """Six panels for one sweep (records of the same batch, same swept variables).

    Top: loss, monosemantic neurons / N and mean bias against log2 training step, one line per
    run, coloured by the (first) swept variable. Bottom: final fraction of monosemantic neurons
    (per feature and per neuron) and final loss against the swept variable, and the final hidden
    biases sorted from most to least monosemantic neuron.
    """
    sweep_vars = list(records[0]["sweep_vars"]) or ["learning_rate"]
    var = sweep_vars[0]
    second = sweep_vars[1] if len(sweep_vars) > 1 else None
    records = sorted(records, key=lambda r: [_value(r, v) for v in sweep_vars])
    values = [_value(r, var) for r in records]
    second_values = sorted({_value(r, second) for r in records}) if second else []

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax_loss, ax_mono, ax_bias, ax_final, ax_floss, ax_sorted = axes.ravel()
    for r in records:
        c = _colour(r, var, values)
        ls = LINESTYLES[second_values.index(_value(r, second)) % 4] if second else "-"
        label = ", ".join(f"{v}={_value(r, v):g}" for v in sweep_vars)
        h = r["history"]
        steps = np.asarray(h["loss_steps"], dtype=float) + 1
        losses = np.asarray([np.nan if x is None else x for x in h["losses"]], dtype=float)
        sm = _smooth(losses)
        ax_loss.plot(np.log2(steps[len(steps) - len(sm) :]), sm, c=c, ls=ls, label=label)
        snap = np.asarray(h["snapshot_steps"], dtype=float)
        n_features = r["config"]["N"]
        ax_mono.plot(np.log2(np.maximum(snap, 0.5)), np.asarray(h["n_mono"]) / n_features,
                     c=c, ls=ls, marker=".")  # fmt: skip
        ax_bias.plot(np.log2(np.maximum(snap, 0.5)), h["mean_bias"], c=c, ls=ls, marker=".")
        ratio = np.asarray(r["final_mono_ratio"], dtype=float)
        order = np.argsort(-np.nan_to_num(ratio, nan=-np.inf), kind="stable")
        biases = np.asarray(r["final_biases"], dtype=float)[order]
        ax_sorted.plot(np.arange(len(biases)), biases, c=c, ls=ls, lw=1)

    groups = [(None, records)] if not second else [
        (s, [r for r in records if _value(r, second) == s]) for s in second_values
    ]  # fmt: skip
    for j, (s, group) in enumerate(groups):
        x = [_value(r, var) for r in group]
        suffix = f" ({second}={s:g})" if second else ""
        ls = LINESTYLES[j % 4]
        ax_final.plot(x, [r["final"]["frac_mono_of_features"] for r in group], "o", ls=ls,
                      c="C0", label="# mono / N" + suffix)  # fmt: skip
        ax_final.plot(x, [r["final"]["frac_mono_of_neurons"] for r in group], "s", ls=ls,
                      c="C1", label="# mono / k" + suffix)  # fmt: skip
        ax_floss.plot(x, [r["final"]["loss"] for r in group], "o", ls=ls, c="C3", label=suffix)

    first = records[0]["config"]
    ax_sorted.axvline(first["N"], c="k", lw=0.8, ls=":", label="N features")
    ax_sorted.axhline(0, c="grey", lw=0.5)
    ax_mono.axhline(1, c="k", lw=0.8, ls=":")
    ax_loss.set(xlabel="log2 training step", ylabel="loss (smoothed)", yscale="log")
    ax_mono.set(xlabel="log2 training step", ylabel="# mono neurons / # features")
    ax_bias.set(xlabel="log2 training step", ylabel="mean hidden bias")
    for ax in (ax_final, ax_floss):
        ax.set_xlabel(NICE.get(var, var))
        if _log_scale(values):
            ax.set_xscale("log")
    ax_final.set(ylabel="final fraction monosemantic")
    ax_final.legend(fontsize=7)
    ax_floss.set(ylabel="final loss (held-out batch)")
    ax_sorted.set(xlabel="neuron (most monosemantic first)", ylabel="final bias")
    ax_sorted.legend(fontsize=8)
    ax_loss.legend(fontsize=7, ncol=1 + len(records) // 7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sfa_figure(
    records: Sequence[Record],
    js: Sequence[int] = (0, 2, 5),
    crop: tuple[int, int] = (1024, 512),
    title: str = "",
) -> Figure:
    """The seed's single-feature activation plot: one image per chosen run of a sweep.

    Each panel shows the final model's response of every neuron (rows) to every feature alone
    (columns), neurons most-monosemantic first and features ordered so that monosemantic neurons
    form a diagonal (``activations.sfa_image``), colour range 0 ... 1.02 as in the original,
    cropped to ``crop`` (neurons, features). ``js`` picks runs by position in the sweep sorted by
    its first swept variable (the seed's default 0, 2, 5); positions past the end are skipped.
    """
    var = (list(records[0]["sweep_vars"]) or ["learning_rate"])[0]
    records = sorted(records, key=lambda r: _value(r, var))
    chosen = [records[j] for j in js if 0 <= j < len(records)]
    if not chosen:
        raise ValueError(f"none of the run positions {list(js)} exist in a sweep of {len(records)}")
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.3 * len(chosen), 6), squeeze=False)
    image = None
    for ax, r in zip(axes[0], chosen, strict=True):
        sfa = sfa_image(record_activations(r))[: crop[0], : crop[1]]
        image = ax.imshow(sfa, interpolation="nearest", aspect="auto", vmin=0, vmax=1.02)
        ax.set_title(f"{NICE.get(var, var)} = {_value(r, var):g}", fontsize=10)
        ax.set_xlabel("feature")
    axes[0][0].set_ylabel("neuron (most monosemantic first)")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), orientation="horizontal", fraction=0.05, pad=0.12)
    fig.suptitle(title or "single-feature activations")
    return fig


def overview_figure(groups: Mapping[str, Mapping[str, Sequence[Record]]], title: str) -> Figure:
    """One panel per group of batches that share a swept variable: final # mono / N vs it."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, (group_name, batches) in zip(axes[0], groups.items(), strict=True):
        var = ""
        for i, (name, records) in enumerate(batches.items()):
            if not records:
                continue
            var = records[0]["sweep_vars"][0]
            records = sorted(records, key=lambda r: _value(r, var))
            x = [_value(r, var) for r in records]
            y = [r["final"]["frac_mono_of_features"] for r in records]
            ax.plot(x, y, marker="o", c=f"C{i}", label=name)
            if _log_scale(x):
                ax.set_xscale("log")
        ax.set(title=group_name, xlabel=NICE.get(var, var), ylabel="final # mono / N")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path, dpi: int = 72) -> Path:
    """Save ``fig`` as a palette PNG (small, since figures are committed) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    plt.close(fig)
    image = Image.open(buffer).convert("RGB").quantize(colors=128)
    tmp = path.with_name(f".tmp-{path.name}")
    image.save(tmp, format="PNG", optimize=True)
    tmp.replace(path)
    return path
