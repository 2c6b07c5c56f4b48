"""The named experiments behind the figures and notebooks, each at a full or a fast size.

Every function takes ``fast`` (tiny sizes for CI; see :func:`fast_mode`), a ``seed`` and a
``device``, trains what it needs, and returns plain data (tensors, lists) for :mod:`.figures`.
The settings used are returned too, so saved figures can record them.
"""

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from projects.toy_superposition import analysis as A
from projects.toy_superposition.data import (
    BoolOp,
    boolean_targets,
    feature_probability,
    importance_schedule,
    sample_bits,
    sample_k_hot,
    sample_sparse,
)
from projects.toy_superposition.hessian import hessian_eigenvalues
from projects.toy_superposition.hysteresis import SweepRecord, hysteresis_loop
from projects.toy_superposition.models import Net, NetConfig, OutputActivation, ToyModel
from projects.toy_superposition.phase import EmpiricalPhases, analytic_phase, empirical_phases
from projects.toy_superposition.sae_bridge import random_baseline_mmcs, sweep_l1, toy_setup
from projects.toy_superposition.train import (
    FixedDataset,
    TrainConfig,
    instance_loss,
    sparse_sampler,
    train,
)

FAST_ENV = "TOY_SUPERPOSITION_FAST"


def fast_mode() -> bool:
    """True when the environment variable ``TOY_SUPERPOSITION_FAST`` is set to a non-empty,
    non-"0" value (CI runs the notebooks this way)."""
    return os.environ.get(FAST_ENV, "") not in ("", "0")


@dataclass
class Result:
    """Whatever an experiment measured, plus the settings that produced it."""

    settings: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)


def _cfg(fast: bool, steps: int, fast_steps: int, **kw: Any) -> TrainConfig:
    if fast:  # CI: the point is that the code runs, not that it converges
        kw["batch_size"] = min(kw.get("batch_size", 256), 256)
        return TrainConfig(steps=fast_steps, **kw)
    return TrainConfig(steps=steps, **kw)


def sparsity_sweep(
    n_features: int,
    n_hidden: int,
    sparsities: list[float],
    importance: Tensor,
    cfg: TrainConfig,
    output_act: OutputActivation = "relu",
    tied: bool = True,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[Net, Tensor]:
    """Train one instance per sparsity in one batched model; returns the model and final losses."""
    mcfg = NetConfig(n_features, n_hidden, len(sparsities), output_act=output_act, tied=tied)
    model = Net(mcfg, seed=seed, device=device)
    res = train(
        model,
        sparse_sampler(len(sparsities), n_features, sparsities, device=device),
        importance,
        cfg,
    )
    return model, res.final_loss


def intro(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """5 features in 2 dimensions, importance 0.9^i, linear vs ReLU across sparsity (paper Fig. 1)."""
    sparsities = [0.0, 0.8, 0.9]
    cfg = _cfg(fast, 5000, 300, batch_size=1024, lr=1e-2, seed=seed)
    imp = importance_schedule(5, "geometric", 0.9)
    out = Result(
        {
            "n_features": 5,
            "n_hidden": 2,
            "sparsities": sparsities,
            "importance": "0.9^i",
            "train": cfg.to_dict(),
        }
    )
    for act in ("linear", "relu"):
        model, loss = sparsity_sweep(5, 2, sparsities, imp, cfg, act, seed=seed, device=device)
        assert model.b_out is not None
        out.data[act] = {
            "W": model.W_in.detach().cpu(),
            "b": model.b_out.detach().cpu(),
            "loss": loss,
        }
    return out


def twenty_in_five(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """20 features in 5 dimensions, tied (one weight) and untied (two weights), across sparsity."""
    sparsities = [0.0, 0.7, 0.9, 0.99, 0.999]
    n, m = (20, 5) if not fast else (8, 3)
    cfg = _cfg(fast, 10000, 200, batch_size=1024, lr=3e-3 if not fast else 1e-2, seed=seed)
    imp = importance_schedule(n, "geometric", 0.9)
    out = Result(
        {
            "n_features": n,
            "n_hidden": m,
            "sparsities": sparsities,
            "importance": "0.9^i",
            "train": cfg.to_dict(),
        }
    )
    for name, tied in (("tied", True), ("untied", False)):
        model, loss = sparsity_sweep(
            n, m, sparsities, imp, cfg, tied=tied, seed=seed, device=device
        )
        assert model.b_out is not None
        W_in, W_out = model.W_in.detach().cpu(), model.unembed.detach().cpu()
        out.data[name] = {
            "W": W_in,
            "WtW": W_in @ W_out,
            "gain": A.self_gain(W_in, W_out),
            "b": model.b_out.detach().cpu(),
            "loss": loss,
            "n_represented": A.n_represented_untied(W_in, W_out).tolist(),
        }
    return out


def twenty_in_five_recipes(
    fast: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    parts_dir: str | None = None,
) -> Result:
    """Seed 003's recipe beside the project's for the 20-in-5 one/two-weight study, and the
    one-ingredient ablation between them (two weights; :mod:`.recipes`).

    The work splits into parts (one per group of recipes that train together, see
    :func:`.recipes.recipe_parts`); with ``parts_dir`` (or ``$TOY_RECIPE_PARTS``) each finished part
    is saved there and reused, so the parts can also run as separate processes
    (``python -m projects.toy_superposition.recipes PART DIR``). ``$TOY_RECIPE_STEPS`` and
    ``$TOY_RECIPE_SEEDS`` shrink the study (steps per sparsity, initialisations per recipe) when the
    machine is too busy for the full size; the settings saved with the figure record them.
    """
    from projects.toy_superposition import recipes as R

    parts_dir = parts_dir or os.environ.get("TOY_RECIPE_PARTS") or None
    steps = int(os.environ.get("TOY_RECIPE_STEPS", "0")) or (100 if fast else 10_000)
    n_seeds = int(os.environ.get("TOY_RECIPE_SEEDS", "0")) or (1 if fast else 2)
    out: dict[str, dict[str, R.RecipeRun]] = {"tied": {}, "untied": {}}
    for name in R.recipe_parts(fast):
        kind, runs = R.run_part(name, fast, n_seeds, seed, device, parts_dir, steps)
        out[kind].update(runs)
    every = R.both_ways()
    settings = {
        "n_features": 20,
        "n_hidden": 5,
        "sparsities": list(R.SPARSITIES),
        "n_seeds": n_seeds,
        "steps_per_sparsity": steps,
        "batch_size": 256 if fast else 1024,
        "recipes": {r.name: r.to_dict() for r in every},
        "criterion": "(W_in W_out)_ii > 0.5 (seed); > 0.25 also reported",
    }
    return Result(settings, out)


def seed_100_in_20(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Seed 003's 100→20 configuration (see :func:`.recipes.seed_100_in_20`)."""
    from projects.toy_superposition import recipes as R

    idx = (0, 19) if fast else (0, 5, 10, 15, 19)
    steps = int(os.environ.get("TOY_RECIPE_STEPS", "0")) or (100 if fast else 10_000)
    batch = 256 if fast else 1024
    out = R.seed_100_in_20(idx, steps, batch, seed=seed, device=device)
    settings = {
        "n_features": 100,
        "n_hidden": 20,
        "importance": "100 ** -linspace(0, 1, 100)",
        "feature_probability": out["feature_probability"],
        "instances_of_20": list(idx),
        "train": {
            "optimizer": "adamw",
            "lr": 1e-3,
            "weight_decay": 0.01,
            "steps": steps,
            "batch_size": batch,
        },
    }
    return Result(settings, out)


def mlne_vs_mse(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """FeatureFinding's MLnLoss notebook: f = 40 one-hot features in 2 tied ReLU dimensions
    trained with the MLnE loss (power 4), beside the same setting with MSE (:mod:`.featurefinding`).
    """
    from projects.toy_superposition import featurefinding as FF

    base = FF.SEED_SETTINGS["mlne"]
    setting = FF.reduced(base, 200, f=12) if fast else base
    out = Result({"setting": setting.to_dict(), "n_seeds": 4})
    for name, s in (("mlne4", setting), ("mse", replace(setting, loss="mse", loss_power=2.0))):
        model, res = FF.train_k_hot(s, n_seeds=4, seed=seed, device=device)
        W = model.W_in.detach().cpu()
        out.data[name] = {
            "W": W,
            "norms": A.feature_norms(W),
            "n_directions": [A.count_directions(W[i]) for i in range(W.shape[0])],
            "groups_eps_1e-5": FF.directions(model),
            "loss": res.final_loss,
        }
    return out


def vary_seed_groups(
    fast: bool = False, seed: int = 0, device: torch.device | str = "cpu"
) -> Result:
    """FeatureFinding's ``count_groups_vary_seed`` at its settings (f = 50, copy-tied GELU, 40 000
    full-batch SGD epochs), over many seeds at once; fast mode shrinks f and the epochs."""
    from projects.toy_superposition import featurefinding as FF

    base = FF.SEED_SETTINGS["vary_seed"]
    setting = FF.reduced(base, 200, f=10) if fast else base
    n_seeds = 4 if fast else 32
    counts, loss = FF.group_count_vs_seed(n_seeds, setting, seed=seed, device=device)
    return Result(
        {"setting": setting.to_dict(), "n_seeds": n_seeds, "epsilon": 1e-5},
        {"counts": counts, "loss": loss},
    )


def phase_diagram(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Analytic and empirical phase of 2 features in 1 dimension over (importance r, density)."""
    n_grid = 3 if fast else 12
    rs = np.logspace(-1, 1, n_grid).tolist()
    ds = np.logspace(-2, 0, n_grid).tolist()
    cfg = _cfg(fast, 3000, 300, batch_size=512, lr=3e-2, seed=seed)
    pts = [(r, d) for d in ds for r in rs]
    n_seeds = 2 if fast else 6
    emp: EmpiricalPhases = empirical_phases(
        [p[0] for p in pts], [p[1] for p in pts], cfg, n_seeds=n_seeds, seed=seed, device=device
    )
    ana = [analytic_phase(r, d) for r, d in pts]
    agree = float(np.mean([a == e for a, e in zip(ana, emp.phases, strict=True)]))
    settings = {"importances": rs, "densities": ds, "n_seeds": n_seeds, "train": cfg.to_dict()}
    return Result(
        settings,
        {
            "points": pts,
            "analytic": ana,
            "empirical": emp.phases,
            "agreement": agree,
            "W": emp.W,
            "b": emp.b,
        },
    )


#: Densities of the TMS paper's feature-dimensionality run, ``20 ** -linspace(0, 1, 20)``; the
#: paper-recipe rerun trains the instances at these indices (each instance is independent, so a
#: subset is the same recipe at fewer densities; it keeps the CPU run to minutes).
PAPER_GEOMETRY_INDICES = (0, 3, 5, 7, 9, 11, 14, 19)

#: Simple fractions at which the paper's feature dimensionalities cluster.
D_FRACTIONS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8, 1 / 3)


def d_clusters(D: Tensor, norms: Tensor, tol: float = 0.03, threshold: float = 0.5) -> Tensor:
    """For each instance, how many represented features have ``D_i`` within ``tol`` of each of
    :data:`D_FRACTIONS`; shape ``[n_instances, len(D_FRACTIONS)]``."""
    frac = torch.tensor(D_FRACTIONS, dtype=D.dtype)
    near = (D[..., None] - frac).abs() < tol
    return (near & (norms > threshold)[..., None]).sum(dim=-2)


def geometry(
    fast: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    recipe: str = "project",
) -> Result:
    """Dimensions per feature and each feature's dimensionality vs sparsity (paper §7).

    ``recipe="project"``: 200 features in 20 dimensions, 24 densities from 1 to 1/316, AdamW
    lr 1e-2 without weight decay, batch 256, 5 000 steps. ``recipe="paper"``: the TMS paper's
    settings — 200 in 20, densities ``20 ** -linspace(0, 1, 20)`` (the instances in
    :data:`PAPER_GEOMETRY_INDICES`), uniform importance, AdamW lr 1e-3 with torch's default weight
    decay 0.01, constant learning rate, batch 1024, 10 000 steps.
    """
    if recipe == "project":
        n, m = (20, 4) if fast else (200, 20)
        n_points = 6 if fast else 24
        densities = np.logspace(0, -2.5, n_points).tolist()
        cfg = _cfg(fast, 5000, 200, batch_size=256, lr=1e-2, seed=seed)
    elif recipe == "paper":
        n, m = (20, 4) if fast else (200, 20)
        all_d = (20.0 ** -np.linspace(0, 1, 20)).tolist()
        env_idx = os.environ.get("TOY_GEOMETRY_INDICES", "")  # e.g. "7" or "7,9" on a busy machine
        indices = [int(i) for i in env_idx.split(",")] if env_idx else PAPER_GEOMETRY_INDICES
        densities = [all_d[i] for i in indices]
        # $TOY_GEOMETRY_STEPS shortens the run when the machine is too busy (recorded in settings)
        steps = int(os.environ.get("TOY_GEOMETRY_STEPS", "0")) or 10_000
        cfg = _cfg(fast, steps, 200, batch_size=1024, lr=1e-3, weight_decay=0.01, seed=seed)
    else:
        raise ValueError(f"unknown geometry recipe {recipe!r}; use 'project' or 'paper'")
    sparsities = [1 - d for d in densities]
    model, loss = sparsity_sweep(
        n, m, sparsities, importance_schedule(n, "uniform"), cfg, seed=seed, device=device
    )
    W = model.W_in.detach().cpu()
    settings = {
        "recipe": recipe,
        "n_features": n,
        "n_hidden": m,
        "densities": densities,
        "importance": "uniform",
        "train": cfg.to_dict(),
    }
    D = A.feature_dimensionality(W)
    norms = A.feature_norms(W)
    return Result(
        settings,
        {
            "densities": densities,
            "dims_per_feature": A.dims_per_feature(W),
            "feature_dimensionality": D,
            "norms": norms,
            "d_clusters": d_clusters(D, norms),
            "loss": loss,
        },
    )


def softmax_1d(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """One-hot inputs through a 1-D hidden layer, softmax + cross-entropy (FeatureFinding 1d-softmax)."""
    n = 6 if fast else 10
    cfg = _cfg(fast, 4000, 400, batch_size=512, lr=3e-2, seed=seed, loss="ce")
    model = Net(NetConfig(n, 1, 1, tied=False, output_act="softmax"), seed=seed, device=device)

    def data(batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x = sample_k_hot(1, batch, n, 1, gen, values="ones", device=device)
        return x, x

    res = train(model, data, torch.ones(n, device=device), cfg)
    eye = torch.eye(n, device=device)[None]
    with torch.no_grad():
        logits = model(eye)[0].cpu()
    assert model.W_out is not None
    assert model.b_out is not None
    return Result(
        {"n_features": n, "train": cfg.to_dict()},
        {
            "embedding": model.W_in.detach().cpu()[0, :, 0],
            "unembed": model.W_out.detach().cpu()[0, 0],
            "bias": model.b_out.detach().cpu()[0],
            "accuracy": float((logits.argmax(-1) == torch.arange(n)).float().mean()),
            "loss": res.as_tensor()[:, 0],
            "steps": res.steps,
        },
    )


def one_hot_2d(
    tied: bool, bias: bool, fast: bool = False, seed: int = 0, device: torch.device | str = "cpu"
) -> Result:
    """One-hot inputs, 2-D hidden layer, ReLU-MSE, for several feature counts n (FeatureFinding
    2d-bias, 2d-untied-nobias). Returns the encoder (and decoder) directions per n."""
    ns = [3, 5, 8] if fast else [3, 4, 5, 6, 7, 8, 10, 12]
    cfg = _cfg(fast, 4000, 300, batch_size=512, lr=1e-2, seed=seed)
    out = Result(
        {
            "ns": ns,
            "tied": tied,
            "bias": bias,
            "inputs": "one-hot, uniform values",
            "train": cfg.to_dict(),
        }
    )
    for n in ns:
        mcfg = NetConfig(n, 2, 2, tied=tied, output_bias=bias)
        model = Net(mcfg, seed=seed, device=device)

        def data(batch: int, gen: torch.Generator, n: int = n) -> tuple[Tensor, Tensor]:
            x = sample_k_hot(2, batch, n, 1, gen, device=device)
            return x, x

        res = train(model, data, torch.ones(n, device=device), cfg)
        best = int(res.final_loss.argmin())
        W = model.W_in.detach().cpu()[best]
        out.data[n] = {
            "W": W,
            "W_out": model.unembed.detach().cpu()[best].T,
            "b": None if model.b_out is None else model.b_out.detach().cpu()[best],
            "n_represented": int(A.n_represented(W)),
            "n_directions": A.count_directions(W),
            "loss": float(res.final_loss[best]),
        }
    return out


def bias_hysteresis(
    fast: bool = False, seed: int = 0, device: torch.device | str = "cpu"
) -> Result:
    """Sweep sparsity up then down with a warm 5-in-2 ReLU model with bias (importance 0.9^i)."""
    sparsities = (
        [0.0, 0.5, 0.8, 0.9, 0.95]
        if fast
        else [0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95]
    )
    cfg = _cfg(fast, 1000, 100, batch_size=512, lr=1e-2, seed=seed)
    up, down = hysteresis_loop(
        NetConfig(5, 2), sparsities, importance_schedule(5, "geometric", 0.9), cfg, seed, device
    )
    return Result(
        {
            "sparsities": sparsities,
            "n_features": 5,
            "n_hidden": 2,
            "importance": "0.9^i",
            "train_per_stage": cfg.to_dict(),
        },
        {"up": up, "down": down},
    )


def computation(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Boolean functions of pairs of sparse bits through a ReLU hidden layer of width m.

    Inputs: 6 bits, each on with probability p; targets: AND(0,1), OR(2,3), XOR(4,5). Reports
    each output's accuracy (threshold 0.5) as the hidden width grows."""
    widths = [1, 3] if fast else [1, 2, 3, 4, 6, 8]
    pairs = [(0, 1), (2, 3), (4, 5)]
    ops: list[BoolOp] = ["and", "or", "xor"]
    p = 0.3
    cfg = _cfg(fast, 4000, 300, batch_size=512, lr=1e-2, seed=seed)
    prob = torch.full((len(widths),), p)
    acc = torch.zeros(len(widths), len(ops))
    gen = torch.Generator(device=device).manual_seed(seed + 99)
    xt = sample_bits(1, 4096, 6, prob[:1], gen, device)
    yt = boolean_targets(xt, pairs, ops)
    for i, m in enumerate(widths):
        mcfg = NetConfig(
            6,
            m,
            1,
            n_outputs=3,
            tied=False,
            hidden_bias=True,
            hidden_act="relu",
            output_act="linear",
        )
        model = Net(mcfg, seed=seed, device=device)

        def data(batch: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
            x = sample_bits(1, batch, 6, prob[:1], g, device)
            return x, boolean_targets(x, pairs, ops)

        train(model, data, torch.ones(3, device=device), cfg)
        with torch.no_grad():
            acc[i] = ((model(xt) > 0.5).float() == yt).float().mean(dim=(0, 1)).cpu()
    return Result(
        {
            "widths": widths,
            "pairs": pairs,
            "ops": ops,
            "bit_probability": p,
            "train": cfg.to_dict(),
        },
        {"accuracy": acc},
    )


def hessian_over_training(
    fast: bool = False, seed: int = 0, device: torch.device | str = "cpu"
) -> Result:
    """Hessian eigenvalues of a 5-in-2 ReLU model with bias during full-batch training."""
    n, m, s = 5, 2, 0.9
    cfg = _cfg(fast, 3000, 300, batch_size=4096, lr=5e-3, seed=seed, log_every=50 if fast else 100)
    imp = importance_schedule(n, "geometric", 0.9)
    gen = torch.Generator(device=device).manual_seed(seed)
    x = sample_sparse(
        1, 1024 if fast else 4096, n, feature_probability(s, device), gen, device=device
    )
    data = FixedDataset(x)
    model = ToyModel(n, m, 1, seed=seed, device=device)
    eig: list[Tensor] = []
    n_rep: list[int] = []

    def record(step: int, mdl: torch.nn.Module) -> None:
        eig.append(hessian_eigenvalues(mdl, x, x, imp).cpu())
        n_rep.append(int(A.n_represented(model.W_in.detach()[0])))

    res = train(model, data, imp, cfg, callback=record)
    return Result(
        {
            "n_features": n,
            "n_hidden": m,
            "sparsity": s,
            "importance": "0.9^i",
            "n_samples": len(data),
            "train": cfg.to_dict(),
        },
        {
            "steps": res.steps,
            "loss": res.as_tensor()[:, 0],
            "eigenvalues": torch.stack(eig),
            "n_represented": n_rep,
        },
    )


def non_full_batch(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Full-batch vs mini-batch SGD on the same finite dataset, same number of steps, many restarts
    at once (one per instance); the test loss is measured on fresh samples."""
    n, m, s = 5, 2, 0.9
    n_restarts = 4 if fast else 16
    batches = [1024, 64] if fast else [1024, 256, 64, 16]
    imp = importance_schedule(n, "geometric", 0.9)
    gen = torch.Generator(device=device).manual_seed(seed)
    prob = feature_probability([s] * n_restarts, device)
    x = sample_sparse(1, 1024, n, prob[:1], gen, device=device).expand(n_restarts, -1, -1)
    xt = sample_sparse(n_restarts, 8192, n, prob, gen, device=device)
    steps = 300 if fast else 6000
    out = Result(
        {
            "n_features": n,
            "n_hidden": m,
            "sparsity": s,
            "n_samples": 1024,
            "steps": steps,
            "batch_sizes": batches,
            "optimizer": "sgd(momentum=0.9)",
            "lr": 0.05,
            "n_restarts": n_restarts,
        }
    )
    for bsz in batches:
        cfg = TrainConfig(
            steps=steps,
            batch_size=bsz,
            lr=0.05,
            optimizer="sgd",
            momentum=0.9,
            seed=seed,
            log_every=steps,
        )
        model = ToyModel(n, m, n_restarts, seed=seed, device=device)
        train(model, FixedDataset(x.contiguous()), imp, cfg)
        with torch.no_grad():
            out.data[bsz] = {
                "train_loss": instance_loss(model(x), x, imp).cpu(),
                "test_loss": instance_loss(model(xt), xt, imp).cpu(),
                "n_represented": A.n_represented(model.W_in.detach()).cpu(),
            }
    return out


def symmetric_nd(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Tied, bias-free ReLU models ``ReLU(WᵀWx)``, uniform importance, sparse inputs: count the
    distinct feature directions stored in m dimensions as the number of features grows."""
    ms = [2, 3] if fast else [2, 3, 4]
    ns = [4, 8] if fast else [4, 6, 8, 10, 12, 16, 20]
    s = 0.95
    cfg = _cfg(fast, 4000, 300, batch_size=1024, lr=1e-2, seed=seed)
    counts = torch.zeros(len(ms), len(ns), dtype=torch.long)
    for i, m in enumerate(ms):
        for j, n in enumerate(ns):
            model = Net(NetConfig(n, m, 2, output_bias=False), seed=seed, device=device)
            res = train(
                model, sparse_sampler(2, n, s, device=device), torch.ones(n, device=device), cfg
            )
            best = int(res.final_loss.argmin())
            counts[i, j] = A.count_directions(model.W_in.detach().cpu()[best])
    return Result({"ms": ms, "ns": ns, "sparsity": s, "train": cfg.to_dict()}, {"counts": counts})


def sae_recovery(fast: bool = False, seed: int = 0, device: torch.device | str = "cpu") -> Result:
    """Standard SAEs (the library's trainer) on the hidden layer of an 8-in-4 toy model, swept
    over the L1 coefficient; scores in :class:`.sae_bridge.SAEScore`."""
    setup = toy_setup(
        8,
        4,
        0.9,
        n_samples=8192 if fast else 32768,
        steps=300 if fast else 2000,
        seed=seed,
        device=device,
    )
    l1s = [3e-4, 0.3] if fast else [1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0]
    total = 30_000 if fast else 200_000
    scores = sweep_l1(setup, l1s, d_sae=16, total_samples=total, seed=seed, device=device)
    chance = sum(random_baseline_mmcs(setup, 16, s) for s in range(20)) / 20
    settings = {
        "toy": {"n_features": 8, "n_hidden": 4, "sparsity": 0.9, "importance": "uniform"},
        "sae": {
            "architecture": "standard",
            "d_sae": 16,
            "total_samples": total,
            "lr": 3e-3,
            "batch_size": 256,
        },
        "l1_coefficients": l1s,
    }
    return Result(settings, {"scores": [sc.to_dict() for sc in scores], "chance_mmcs": chance})


__all__ = [
    "D_FRACTIONS",
    "FAST_ENV",
    "PAPER_GEOMETRY_INDICES",
    "Result",
    "SweepRecord",
    "bias_hysteresis",
    "computation",
    "d_clusters",
    "fast_mode",
    "geometry",
    "hessian_over_training",
    "intro",
    "mlne_vs_mse",
    "non_full_batch",
    "one_hot_2d",
    "phase_diagram",
    "sae_recovery",
    "seed_100_in_20",
    "softmax_1d",
    "sparsity_sweep",
    "symmetric_nd",
    "twenty_in_five",
    "twenty_in_five_recipes",
    "vary_seed_groups",
]
