"""The 20-in-5 one/two-weight study under two recipes, and an ablation between them.

Seed 003 (a "toy models for superposition" replication) trains ``ReLU(x W1 W1ᵀ + b)`` (one
weight) and ``ReLU(x W1 W2 + b)`` (two weights), 20 features in 5 dimensions, and reports that the
two-weight model stores all 20 features at high sparsity. Its recipe differs from this project's
first one in four ingredients, each a field of :class:`Recipe`:

- ``data``: ``"project"`` draws each feature as ``U[0,1)`` with probability ``1-S`` (the paper's
  distribution); ``"seed"`` draws ``u ~ U[0,1)``, keeps ``u`` where ``u <= 1-S`` (so active values
  are ``U[0, 1-S]``), then scales every sample to unit L2 norm (all-zero samples stay zero).
- ``importance_base``: importance ``base**i`` (project 0.9, seed 0.7).
- ``optimizer`` / ``lr`` / ``weight_decay``: project Adam 3e-3; seed AdamW 1e-3, weight decay 0.01.
- ``warm_start``: the seed trains *one* model through the sparsities in order (0, 0.7, 0.9, 0.99,
  0.999), a fresh optimiser per stage, and snapshots it after each; the project trains one
  independent model per sparsity.

Both use 10 000 steps of 1024 fresh samples per sparsity, Xavier-normal weights and a zero bias,
and the loss ``mean_{batch, i} I_i (x_i - y_i)²``. A feature counts as represented when the
diagonal ``(W_in W_out)_ii`` exceeds 0.5 (the seed's criterion); the project's first criterion,
``> 0.25``, is reported too.

:func:`ablation` changes one ingredient at a time, from either recipe towards the other.
:func:`seed_100_in_20` is the seed's 100→20 configuration (the paper's "superposition" setting).
"""

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from projects.toy_superposition import analysis as A
from projects.toy_superposition.data import importance_schedule, normalise, sample_sparse
from projects.toy_superposition.models import Net, NetConfig
from projects.toy_superposition.train import Sampler, TrainConfig, train

DataKind = Literal["project", "seed"]
SPARSITIES = (0.0, 0.7, 0.9, 0.99, 0.999)
INGREDIENTS = ("data", "importance", "optimizer", "warm_start")


def sample_seed003(
    n_instances: int,
    batch: int,
    n_features: int,
    sparsity: Tensor,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Seed 003's inputs, ``[n_instances, batch, n_features]``: ``u ~ U[0,1)`` kept where
    ``u <= 1 - S`` (``sparsity`` is ``[n_instances]``), then every sample scaled to unit norm."""
    u = torch.rand((n_instances, batch, n_features), generator=generator, device=device)
    keep = u <= (1.0 - sparsity.to(device))[:, None, None]
    return normalise(torch.where(keep, u, torch.zeros((), device=device)))


def recipe_sampler(
    data: Sequence[DataKind],
    n_features: int,
    sparsities: Sequence[float],
    device: torch.device | str = "cpu",
) -> Sampler:
    """Autoencoding sampler with one instance per entry of ``sparsities``; instance ``k`` draws its
    inputs in the style ``data[k]`` (``"project"`` or ``"seed"``)."""
    if len(data) != len(sparsities):
        raise ValueError(f"got {len(data)} data kinds for {len(sparsities)} instances")
    bad = sorted({d for d in data if d not in ("seed", "project")})
    if bad:
        raise ValueError(f"unknown data kind(s) {bad}; use 'project' or 'seed'")
    s = torch.tensor(list(sparsities), dtype=torch.float32)
    k = len(sparsities)
    seed_rows = torch.tensor([d == "seed" for d in data], device=device)[:, None, None]
    kinds = set(data)

    def sample(batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        xs = sample_seed003(k, batch, n_features, s, gen, device) if "seed" in kinds else None
        xp = (
            sample_sparse(k, batch, n_features, 1.0 - s, gen, device=device)
            if "project" in kinds
            else None
        )
        if xs is None:
            assert xp is not None
            return xp, xp
        x = xs if xp is None else torch.where(seed_rows, xs, xp)
        return x, x

    return sample


@dataclass(frozen=True)
class Recipe:
    """One way to train the 20-in-5 study (see the module docstring)."""

    name: str
    data: DataKind
    importance_base: float
    optimizer: Literal["adam", "adamw"]
    lr: float
    weight_decay: float
    warm_start: bool
    steps: int = 10_000
    batch_size: int = 1024

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for JSON settings files)."""
        return asdict(self)

    def with_ingredient(self, ingredient: str, other: "Recipe") -> "Recipe":
        """This recipe with one ingredient (one of :data:`INGREDIENTS`) taken from ``other``."""
        fields: dict[str, tuple[str, ...]] = {
            "data": ("data",),
            "importance": ("importance_base",),
            "optimizer": ("optimizer", "lr", "weight_decay"),
            "warm_start": ("warm_start",),
        }
        if ingredient not in fields:
            raise ValueError(f"unknown ingredient {ingredient!r}; use one of {INGREDIENTS}")
        kw: dict[str, Any] = {f: getattr(other, f) for f in fields[ingredient]}
        return replace(self, name=f"{self.name} + {other.name}'s {ingredient}", **kw)


PROJECT = Recipe("project", "project", 0.9, "adam", 3e-3, 0.0, warm_start=False)
SEED003 = Recipe("seed", "seed", 0.7, "adamw", 1e-3, 0.01, warm_start=True)


@dataclass
class RecipeRun:
    """Weights after each sparsity: ``W_in[s, r]`` is seed-instance ``r`` at ``sparsities[s]``."""

    recipe: Recipe
    tied: bool
    sparsities: list[float]
    W_in: Tensor  # [n_sparsities, n_seeds, n, m]
    W_out: Tensor  # [n_sparsities, n_seeds, m, n]
    b: Tensor  # [n_sparsities, n_seeds, n]
    loss: Tensor  # [n_sparsities, n_seeds]

    @property
    def diagonal(self) -> Tensor:
        """``(W_in W_out)_ii``, ``[n_sparsities, n_seeds, n]``."""
        return A.self_gain(self.W_in, self.W_out)

    def n_represented(self, threshold: float = 0.5) -> Tensor:
        """Features whose diagonal exceeds ``threshold``, ``[n_sparsities, n_seeds]``."""
        return (self.diagonal > threshold).sum(dim=-1)


def run_recipes(
    recipes: Sequence[Recipe],
    tied: bool,
    n_features: int = 20,
    n_hidden: int = 5,
    sparsities: Sequence[float] = SPARSITIES,
    n_seeds: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[RecipeRun]:
    """Train the study under each recipe; ``n_seeds`` initialisations per recipe.

    Recipes that share their optimiser, warm start and size train together as instances of one
    batched model (instances never interact: the loss is a sum over instances and Adam(W) acts
    elementwise), each instance with its own data style and importance.
    """
    first = recipes[0]
    shared = ("optimizer", "lr", "weight_decay", "warm_start", "steps", "batch_size")
    for r in recipes:
        diff = [f for f in shared if getattr(r, f) != getattr(first, f)]
        if diff:
            raise ValueError(
                f"recipes trained together must share {diff}: {r.name} vs {first.name}"
            )
    cfg = TrainConfig(
        steps=first.steps,
        batch_size=first.batch_size,
        lr=first.lr,
        optimizer=first.optimizer,
        weight_decay=first.weight_decay,
        seed=seed,
        log_every=first.steps,
    )
    sp = list(sparsities)
    n_rec, k = len(recipes), len(sp)

    def importance(rows_per_recipe: int) -> Tensor:
        imp = [
            importance_schedule(n_features, "geometric", r.importance_base, device=device)
            for r in recipes
        ]
        return torch.stack(imp).repeat_interleave(rows_per_recipe, dim=0)

    def snapshot(model: Net) -> tuple[Tensor, Tensor, Tensor]:
        assert model.b_out is not None
        return (
            model.W_in.detach().cpu().clone(),
            model.unembed.detach().cpu().clone(),
            model.b_out.detach().cpu().clone(),
        )

    if first.warm_start:
        # instance index = recipe * n_seeds + seed-instance; all at the current sparsity
        n_inst = n_rec * n_seeds
        model = Net(NetConfig(n_features, n_hidden, n_inst, tied=tied), seed=seed, device=device)
        kinds = [r.data for r in recipes for _ in range(n_seeds)]
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for i, s in enumerate(sp):
            data = recipe_sampler(kinds, n_features, [s] * n_inst, device)
            res = train(model, data, importance(n_seeds), replace(cfg, seed=seed + i))
            parts.append((*snapshot(model), res.final_loss))
        # [k, n_rec * n_seeds, ...] -> [n_rec, k, n_seeds, ...]
        W_in, W_out, b, loss = (
            torch.stack(t).reshape(k, n_rec, n_seeds, *t[0].shape[1:]).transpose(0, 1)
            for t in zip(*parts, strict=True)
        )
    else:
        # instance index = (recipe * k + sparsity) * n_seeds + seed-instance
        n_inst = n_rec * k * n_seeds
        model = Net(NetConfig(n_features, n_hidden, n_inst, tied=tied), seed=seed, device=device)
        kinds = [r.data for r in recipes for _ in range(k * n_seeds)]
        data = recipe_sampler(kinds, n_features, np.tile(np.repeat(sp, n_seeds), n_rec), device)
        res = train(model, data, importance(k * n_seeds), cfg)
        W_in, W_out, b = snapshot(model)
        W_in = W_in.reshape(n_rec, k, n_seeds, *W_in.shape[1:])
        W_out = W_out.reshape(n_rec, k, n_seeds, *W_out.shape[1:])
        b = b.reshape(n_rec, k, n_seeds, -1)
        loss = res.final_loss.reshape(n_rec, k, n_seeds)
    return [RecipeRun(r, tied, sp, W_in[j], W_out[j], b[j], loss[j]) for j, r in enumerate(recipes)]


def run_recipe(recipe: Recipe, tied: bool, **kw: Any) -> RecipeRun:
    """Train the study under one recipe (keyword arguments as :func:`run_recipes`)."""
    return run_recipes([recipe], tied, **kw)[0]


def group_recipes(recipes: Sequence[Recipe]) -> list[list[Recipe]]:
    """Split recipes into groups that can train together (same optimiser, warm start, size)."""
    groups: dict[tuple[Any, ...], list[Recipe]] = {}
    for r in recipes:
        key = (r.optimizer, r.lr, r.weight_decay, r.warm_start, r.steps, r.batch_size)
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def run_all(recipes: Sequence[Recipe], tied: bool, **kw: Any) -> dict[str, RecipeRun]:
    """Every recipe, grouped for speed (see :func:`run_recipes`), by recipe name."""
    out: dict[str, RecipeRun] = {}
    for g in group_recipes(recipes):
        for run in run_recipes(g, tied, **kw):
            out[run.recipe.name] = run
    return out


def ablation(base: Recipe, other: Recipe) -> list[Recipe]:
    """``base``, then ``base`` with each ingredient in turn taken from ``other``."""
    return [base] + [base.with_ingredient(g, other) for g in INGREDIENTS]


def both_ways(a: Recipe = PROJECT, b: Recipe = SEED003) -> list[Recipe]:
    """The two one-ingredient ablations, ``a`` towards ``b`` and ``b`` towards ``a`` (10 recipes)."""
    return ablation(a, b) + ablation(b, a)


def scaled(recipe: Recipe, steps: int, batch_size: int) -> Recipe:
    """The same recipe at another size (tests and fast mode)."""
    return replace(recipe, steps=steps, batch_size=batch_size)


def seed_100_in_20(
    instance_indices: Sequence[int] = (0, 5, 10, 15, 19),
    steps: int = 10_000,
    batch_size: int = 1024,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Seed 003's 100→20 configuration (tied, output bias): importance ``100 ** -linspace(0,1,100)``,
    feature probability ``20 ** -linspace(0,1,20)`` (the instances at ``instance_indices``),
    unnormalised ``U[0,1)`` features, AdamW lr 1e-3 (weight decay 0.01), batch 1024, 10 000 steps.
    """
    n, m = 100, 20
    imp = 100.0 ** -torch.linspace(0, 1, n)
    prob_all = 20.0 ** -torch.linspace(0, 1, 20)
    prob = prob_all[list(instance_indices)]
    model = Net(NetConfig(n, m, len(prob)), seed=seed, device=device)

    def data(batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x = sample_sparse(len(prob), batch, n, prob, gen, device=device)
        return x, x

    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, lr=1e-3, weight_decay=0.01, seed=seed, log_every=steps
    )
    res = train(model, data, imp.to(device), cfg)
    W = model.W_in.detach().cpu()
    diag = (W**2).sum(-1)
    return {
        "feature_probability": prob.tolist(),
        "n_represented": (diag > 0.5).sum(-1).tolist(),
        "dims_per_feature": A.dims_per_feature(W).tolist(),
        "loss": res.final_loss.tolist(),
        "W": W,
    }


def recipe_parts(fast: bool = False) -> list[str]:
    """Names of the independent parts of the full study: ``"tied:<i>"`` for the groups of the two
    baseline recipes with one weight, ``"untied:<i>"`` for the groups of :func:`both_ways`."""
    tied = group_recipes([scaled(r, 1, 1) for r in (PROJECT, SEED003)])
    untied = group_recipes([scaled(r, 1, 1) for r in both_ways()])
    return [f"tied:{i}" for i in range(len(tied))] + [f"untied:{i}" for i in range(len(untied))]


def run_part(
    name: str,
    fast: bool,
    n_seeds: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    parts_dir: str | None = None,
    steps: int | None = None,
) -> tuple[str, dict[str, RecipeRun]]:
    """Run (or load from ``parts_dir``) one part of :func:`recipe_parts`; returns its kind and
    its runs by recipe name. ``steps`` per sparsity defaults to the recipes' 10 000 (100 fast)."""
    kind, idx = name.split(":")
    steps = steps or (100 if fast else 10_000)
    batch = 256 if fast else 1024
    base = (PROJECT, SEED003) if kind == "tied" else tuple(both_ways())
    group = group_recipes([scaled(r, steps, batch) for r in base])[int(idx)]
    path = None
    if parts_dir is not None:
        tag = f"{'fast' if fast else 'full'}_s{seed}_n{n_seeds}_t{steps}_{kind}_{idx}.pt"
        path = Path(parts_dir) / tag
        if path.exists():
            return kind, torch.load(path, weights_only=False)
    runs = {
        r.recipe.name: r
        for r in run_recipes(group, kind == "tied", n_seeds=n_seeds, seed=seed, device=device)
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(runs, tmp)
        os.replace(tmp, path)
    return kind, runs


if __name__ == "__main__":
    # python -m projects.toy_superposition.recipes PART DIR [--fast]: one part, saved under DIR;
    # $TOY_RECIPE_STEPS and $TOY_RECIPE_SEEDS override the steps per sparsity and the seeds
    import sys

    torch.set_num_threads(1)
    args = [a for a in sys.argv[1:] if a != "--fast"]
    fast = "--fast" in sys.argv
    if len(args) != 2 or args[0] not in recipe_parts(fast):
        raise SystemExit(f"usage: PART DIR [--fast]; PART is one of {recipe_parts(fast)}")
    env_steps = int(os.environ.get("TOY_RECIPE_STEPS", "0")) or None
    env_seeds = int(os.environ.get("TOY_RECIPE_SEEDS", "0")) or (1 if fast else 2)
    # through the package, so the saved runs pickle as recipes.RecipeRun, not __main__.RecipeRun
    from projects.toy_superposition import recipes as this  # noqa: PLW0406

    this.run_part(args[0], fast, env_seeds, parts_dir=args[1], steps=env_steps)
