"""Plots of the experiments in :mod:`.experiments`; each function returns a matplotlib Figure."""

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from projects.toy_superposition import analysis as A
from projects.toy_superposition.experiments import Result
from projects.toy_superposition.phase import PHASES

PHASE_COLOURS = {
    "first": "#4c72b0",
    "second": "#55a868",
    "antipodal": "#c44e52",
    "other": "#bbbbbb",
}


def _arrows(ax: Any, W: torch.Tensor, colours: Any = None, lim: float = 1.3) -> None:
    """Feature directions of a 2-D hidden layer as arrows from the origin."""
    n = W.shape[0]
    cols = colours if colours is not None else plt.cm.viridis(np.linspace(0, 0.9, n))  # type: ignore[attr-defined]
    for i in range(n):
        ax.plot([0, W[i, 0]], [0, W[i, 1]], color=cols[i], lw=2)
        ax.scatter([W[i, 0]], [W[i, 1]], color=cols[i], s=15, zorder=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _heat(ax: Any, M: torch.Tensor, vmax: float = 1.3) -> None:
    ax.imshow(M.numpy(), cmap="RdBu", vmin=-vmax, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])


def intro_figure(res: Result) -> Figure:
    """Rows: linear, ReLU. Per sparsity: WᵀW, bias, and the 2-D feature directions."""
    sp = res.settings["sparsities"]
    fig, axes = plt.subplots(
        2,
        3 * len(sp),
        figsize=(3.2 * len(sp), 4.2),
        gridspec_kw={"width_ratios": [5, 1, 5] * len(sp)},
    )
    for r, act in enumerate(("linear", "relu")):
        W, b = res.data[act]["W"], res.data[act]["b"]
        for c, s in enumerate(sp):
            _heat(axes[r, 3 * c], W[c] @ W[c].T)
            _heat(axes[r, 3 * c + 1], b[c][:, None])
            _arrows(axes[r, 3 * c + 2], W[c])
            if r == 0:
                axes[r, 3 * c].set_title(f"S = {s:g}: WᵀW", fontsize=9)
                axes[r, 3 * c + 1].set_title("b", fontsize=9)
        axes[r, 0].set_ylabel(act, fontsize=11)
    fig.suptitle("5 features in 2 dimensions, importance 0.9^i (dark = more important)")
    fig.tight_layout()
    return fig


def twenty_in_five_figure(res: Result) -> Figure:
    """WᵀW (or W_in W_out) and bias per sparsity, tied and untied rows, with feature norms."""
    sp = res.settings["sparsities"]
    fig, axes = plt.subplots(
        4,
        2 * len(sp),
        figsize=(2.6 * len(sp), 8.6),
        gridspec_kw={"width_ratios": [8, 1] * len(sp), "height_ratios": [3, 1.3, 3, 1.3]},
    )
    for r, name in enumerate(("tied", "untied")):
        d = res.data[name]
        for c, s in enumerate(sp):
            _heat(axes[2 * r, 2 * c], d["WtW"][c])
            _heat(axes[2 * r, 2 * c + 1], d["b"][c][:, None])
            axes[2 * r, 2 * c].set_title(
                f"{name}, 1-S = {1 - s:.3g}\n{d['n_represented'][c]} features represented",
                fontsize=8,
            )
            ax = axes[2 * r + 1, 2 * c]
            norms = d["gain"][c].clamp_min(0).sqrt()  # = ‖W_i‖ when tied
            interf = A.interference(d["W"][c])
            ax.bar(range(len(norms)), norms, color=plt.cm.viridis(np.clip(interf.numpy(), 0, 1)))  # type: ignore[attr-defined]
            ax.set_ylim(0, 1.4)
            ax.set_xticks([])
            ax.tick_params(labelsize=6)
            axes[2 * r + 1, 2 * c + 1].axis("off")
    fig.suptitle(
        "20 features in 5 dimensions (importance 0.9^i); bars: √(W_in W_out)_ii (= ‖W_i‖ tied) coloured by interference (yellow = superposed)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def recipes_figure(res: Result) -> Figure:
    """Top: (W_in W_out) and bias per sparsity for the seed's and the project's recipe, one and two
    weights (first seed-instance). Bottom: represented features (diagonal > 0.5) per sparsity for
    every recipe of the two-weight ablation (mean over seed-instances)."""
    sp = res.settings["sparsities"]
    rows = [
        ("tied", "seed"),
        ("untied", "seed"),
        ("tied", "project"),
        ("untied", "project"),
    ]
    fig = plt.figure(figsize=(2.4 * len(sp) + 1, 13))
    gs = fig.add_gridspec(len(rows) + 2, 2 * len(sp), width_ratios=[8, 1] * len(sp))
    for r, (kind, rname) in enumerate(rows):
        run = res.data[kind][rname]
        WW = run.W_in @ run.W_out
        for c, s in enumerate(sp):
            ax = fig.add_subplot(gs[r, 2 * c])
            _heat(ax, WW[c, 0])
            n_rep = int(run.n_represented(0.5)[c, 0])
            ax.set_title(f"{rname} {kind}, 1-S={1 - s:.3g}\n{n_rep} represented", fontsize=7)
            _heat(fig.add_subplot(gs[r, 2 * c + 1]), run.b[c, 0][:, None])
    ax = fig.add_subplot(gs[len(rows) :, :])
    names = list(res.data["untied"])
    x = np.arange(len(sp))
    for j, name in enumerate(names):
        counts = res.data["untied"][name].n_represented(0.5).float().mean(-1).numpy()
        style = "-" if name in ("seed", "project") else "--"
        ax.plot(x + 0.03 * (j - len(names) / 2), counts, style, marker="o", ms=3, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels([f"S={s:g}" for s in sp])
    ax.set_ylabel("two-weight features with diagonal > 0.5")
    ax.set_ylim(0, 21)
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_title("ablation: one ingredient at a time")
    fig.tight_layout()
    return fig


def seed_100_in_20_figure(res: Result) -> Figure:
    """WᵀW per trained instance of the seed's 100→20 configuration."""
    W = res.data["W"]
    k = W.shape[0]
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 3))
    for i in range(k):
        ax = axes[i] if k > 1 else axes
        _heat(ax, W[i] @ W[i].T)
        p = res.data["feature_probability"][i]
        ax.set_title(f"1-S = {p:.3g}: {res.data['n_represented'][i]} repr.", fontsize=8)
    fig.suptitle("seed 003's 100 → 20 configuration (importance 100^-i/99)", fontsize=9)
    fig.tight_layout()
    return fig


def mlne_figure(res: Result) -> Figure:
    """Feature directions of the f one-hot features after MLnE(4) and after MSE training, 4 seeds."""
    fig, axes = plt.subplots(2, 4, figsize=(12, 6.4))
    for r, name in enumerate(("mlne4", "mse")):
        d = res.data[name]
        W = d["W"]
        lim = 1.15 * float(W.abs().max()) + 1e-9
        for c in range(4):
            _arrows(axes[r, c], W[c], lim=lim)
            axes[r, c].set_title(f"{name}, seed {c}: {d['n_directions'][c]} directions", fontsize=8)
    s = res.settings["setting"]
    fig.suptitle(f"f = {s['f']} one-hot features, 2-D tied ReLU, {s['epochs']} epochs", fontsize=10)
    fig.tight_layout()
    return fig


def vary_seed_figure(res: Result) -> Figure:
    """Histogram of the number of distinct directions over seeds."""
    counts = np.array(res.data["counts"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lo, hi = int(counts.min()), int(counts.max())
    ax.hist(counts, bins=np.arange(lo - 0.5, hi + 1.5), color="#4c72b0", rwidth=0.85)
    ax.set_xlabel("distinct directions (ε = 1e-5)")
    ax.set_ylabel("seeds")
    s = res.settings["setting"]
    ax.set_title(
        f"f = {s['f']}, {s['nonlinearity']}, copy-tied, {s['epochs']} SGD epochs, "
        f"{res.settings['n_seeds']} seeds",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def phase_figure(res: Result) -> Figure:
    """Analytic vs empirical phase over (relative importance, density)."""
    rs, ds = res.settings["importances"], res.settings["densities"]
    cmap = ListedColormap([PHASE_COLOURS[p] for p in PHASES])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key in zip(axes, ("analytic", "empirical"), strict=True):
        grid = np.array([PHASES.index(p) for p in res.data[key]]).reshape(len(ds), len(rs))
        ax.pcolormesh(rs, ds, grid, cmap=cmap, vmin=-0.5, vmax=len(PHASES) - 0.5, shading="nearest")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("relative importance of feature 2")
        ax.set_ylabel("feature density 1 - S")
        ax.set_title(key)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PHASE_COLOURS[p]) for p in PHASES]  # type: ignore[attr-defined]
    labels = ["feature 1 only", "feature 2 only", "antipodal (superposition)", "other"]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"2 features in 1 dimension — agreement {100 * res.data['agreement']:.0f}%")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def geometry_figure(res: Result) -> Figure:
    """Dimensions per feature vs 1/(1-S), with every feature's dimensionality as a dot."""
    d = np.array(res.data["densities"])
    x = 1 / d
    fig, ax = plt.subplots(figsize=(7, 4))
    D = res.data["feature_dimensionality"].numpy()
    rep = (res.data["norms"] > 0.5).numpy()  # unrepresented features have no meaningful D_i
    for i in range(len(d)):
        ax.scatter(np.full(rep[i].sum(), x[i]), D[i][rep[i]], s=4, color="#999999", alpha=0.5)
    ax.plot(x, res.data["dims_per_feature"].numpy(), color="k", lw=2, label="m / ‖W‖_F²")
    for frac, name in (
        (1, "1"),
        (3 / 4, "3/4"),
        (2 / 3, "2/3"),
        (1 / 2, "1/2"),
        (2 / 5, "2/5"),
        (3 / 8, "3/8"),
    ):
        ax.axhline(frac, color="#cccccc", lw=0.7, ls="--", zorder=0)
        ax.text(x[-1] * 1.1, frac, name, fontsize=7, va="center")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("1 / (1 - S)")
    ax.set_ylabel("dimensions per feature")
    ax.legend(loc="upper right")
    s = res.settings
    ax.set_title(
        f"{s['n_features']} features in {s['n_hidden']} dimensions ({s.get('recipe', 'project')} "
        "recipe); dots: D_i of represented features",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def softmax_1d_figure(res: Result) -> Figure:
    """Where each one-hot feature sits on the line, and the logit lines it is read out with."""
    emb, w, b = res.data["embedding"], res.data["unembed"], res.data["bias"]
    n = emb.numel()
    lo, hi = float(emb.min()) - 0.5, float(emb.max()) + 0.5
    h = torch.linspace(lo, hi, 400)
    logits = h[:, None] * w + b
    cols = plt.cm.tab10(np.arange(n) % 10)  # type: ignore[attr-defined]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    for i in range(n):
        ax1.plot(h, logits[:, i], color=cols[i], lw=1.5)
        ax1.axvline(float(emb[i]), color=cols[i], ls=":", lw=1)
    ax1.set_xlabel("hidden value h")
    ax1.set_ylabel("logit")
    ax1.set_title(f"{n} one-hot features in 1 dimension: accuracy {res.data['accuracy']:.2f}")
    ax2.plot(res.data["steps"], res.data["loss"])
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("cross-entropy")
    fig.tight_layout()
    return fig


def one_hot_2d_figure(res: Result) -> Figure:
    """Encoder (solid) and, when untied, decoder (dashed) directions for each feature count."""
    ns = res.settings["ns"]
    fig, axes = plt.subplots(1, len(ns), figsize=(2.2 * len(ns), 2.6))
    for ax, n in zip(np.atleast_1d(axes), ns, strict=True):
        d = res.data[n]
        lim = 1.1 * max(float(d["W"].abs().max()), float(d["W_out"].abs().max()), 1.0)
        _arrows(ax, d["W"], lim=lim)
        if not res.settings["tied"]:
            for i in range(n):
                ax.plot([0, d["W_out"][i, 0]], [0, d["W_out"][i, 1]], color="k", ls="--", lw=0.8)
        ax.set_title(f"n={n}: {d['n_represented']} rep., {d['n_directions']} dirs", fontsize=8)
    kind = ("tied" if res.settings["tied"] else "untied") + (
        ", bias" if res.settings["bias"] else ", no bias"
    )
    fig.suptitle(f"one-hot inputs, 2-D hidden layer ({kind})", fontsize=10)
    fig.tight_layout()
    return fig


def hysteresis_figure(res: Result) -> Figure:
    """Represented features and mean bias along the up- and down-sweeps of sparsity."""
    up, down = res.data["up"], res.data["down"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for rec, name, mk in ((up, "sparsity increasing", "o-"), (down, "sparsity decreasing", "s--")):
        ax1.plot(rec.sparsities, rec.n_represented, mk, label=name)
        ax2.plot(rec.sparsities, [float(b.mean()) for b in rec.bias], mk, label=name)
    ax1.set_xlabel("sparsity S")
    ax1.set_ylabel("represented features")
    ax2.set_xlabel("sparsity S")
    ax2.set_ylabel("mean output bias")
    ax1.legend(fontsize=8)
    fig.suptitle("Hysteresis: one warm model (5 features in 2 dims) swept up then down")
    fig.tight_layout()
    return fig


def computation_figure(res: Result) -> Figure:
    """Accuracy of each boolean output against hidden width."""
    acc = res.data["accuracy"].numpy()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for j, op in enumerate(res.settings["ops"]):
        ax.plot(res.settings["widths"], acc[:, j], "o-", label=op.upper())
    ax.set_xlabel("hidden width m")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.legend()
    ax.set_title("Boolean functions of pairs of sparse bits")
    fig.tight_layout()
    return fig


def hessian_figure(res: Result) -> Figure:
    """Loss and the Hessian's eigenvalues over training."""
    steps, eig = res.data["steps"], res.data["eigenvalues"].numpy()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.plot(steps, res.data["loss"])
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1b = ax1.twinx()
    ax1b.step(steps, res.data["n_represented"], color="C3", where="post")
    ax1b.set_ylabel("represented features", color="C3")
    ax2.plot(steps, eig, lw=0.8)
    ax2.set_yscale("symlog", linthresh=1e-4)
    ax2.set_xlabel("step")
    ax2.set_ylabel("Hessian eigenvalues")
    fig.tight_layout()
    return fig


def non_full_batch_figure(res: Result) -> Figure:
    """Final test loss of every restart for each batch size."""
    bs = res.settings["batch_sizes"]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, b in enumerate(bs):
        tl = res.data[b]["test_loss"].numpy()
        ax.scatter(np.full_like(tl, i) + np.linspace(-0.15, 0.15, len(tl)), tl, s=12)
    ax.set_xticks(
        range(len(bs)), [f"{b}" + (" (full)" if b >= res.settings["n_samples"] else "") for b in bs]
    )
    ax.set_xlabel("batch size")
    ax.set_ylabel("test loss")
    ax.set_yscale("log")
    ax.set_title("Full-batch vs mini-batch SGD, same steps, same data")
    fig.tight_layout()
    return fig


def symmetric_nd_figure(res: Result) -> Figure:
    """Distinct directions stored against the number of features, per hidden dimension."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, m in enumerate(res.settings["ms"]):
        ax.plot(res.settings["ns"], res.data["counts"][i].numpy(), "o-", label=f"m = {m}")
    ns = res.settings["ns"]
    ax.plot(ns, ns, color="#cccccc", ls="--", label="all features")
    ax.set_xlabel("number of features n")
    ax.set_ylabel("distinct directions")
    ax.legend()
    ax.set_title(f"ReLU(WᵀWx), no bias, S = {res.settings['sparsity']}")
    fig.tight_layout()
    return fig


def sae_recovery_figure(res: Result) -> Figure:
    """Recovery (MMCS) and explained variance of SAEs against their L1 coefficient."""
    sc = res.data["scores"]
    l1 = [s["l1_coefficient"] for s in sc]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(l1, [s["mmcs"] for s in sc], "o-", label="recovery (mean max cosine)")
    ax.plot(l1, [s["explained_variance"] for s in sc], "s--", label="explained variance")
    ax.axhline(res.data["chance_mmcs"], color="gray", ls=":", label="recovery by random directions")
    for s in sc:
        ax.annotate(
            f"L0={s['l0']:.1f}",
            (s["l1_coefficient"], s["mmcs"]),
            fontsize=7,
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
        )
    ax.set_xscale("log")
    ax.set_xlabel("L1 coefficient")
    ax.set_ylim(0.4, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("SAE on a toy model's hidden layer (8 features in 4 dims)")
    fig.tight_layout()
    return fig
