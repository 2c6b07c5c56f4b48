"""FeatureFinding's own settings: full-batch training on every k-hot input, and the group count
over many seeds.

The FeatureFinding notebooks train one model at a time on all ``C(f, k)`` k-hot vectors (values 1)
with plain SGD and a warm-up scheduler (:func:`.train.featurefinding_schedule`).
:data:`SEED_SETTINGS` records the settings of the notebooks this project mirrors;
:func:`train_k_hot` runs any of them, many seeds at once (one instance per seed: instances never
interact, and SGD acts elementwise, so this equals separate runs from those initialisations), and
:func:`reduced` shrinks a setting for tests and fast mode.

:func:`group_count_vs_seed` is the repository's ``count_groups_vary_seed`` study: f = 50 one-hot
features through a 2-D copy-tied GELU model, 40 000 full-batch SGD epochs per seed, and the number
of distinct directions (:func:`.analysis.group_vectors`, ε = 1e-5) each seed ends with.
"""

from dataclasses import asdict, dataclass, replace
from math import comb
from typing import Any, Literal

import torch
from torch import Tensor

from projects.toy_superposition import analysis as A
from projects.toy_superposition.data import all_k_hot
from projects.toy_superposition.models import Net, NetConfig, OutputActivation
from projects.toy_superposition.train import (
    FixedDataset,
    LossKind,
    TrainConfig,
    TrainResult,
    featurefinding_schedule,
    train,
)


@dataclass(frozen=True)
class KHotSetting:
    """One FeatureFinding training setting (names follow that repository's notebooks)."""

    f: int
    k: int
    n: int
    nonlinearity: OutputActivation = "relu"
    tied: bool = True
    copy_tied: bool = False
    final_bias: bool = False
    loss: LossKind = "mse"
    loss_power: float = 2.0
    optimizer: Literal["sgd", "adam"] = "sgd"
    epochs: int = 10_000
    schedule_epochs: int | None = None  # the scheduler's horizon, when longer than ``epochs``
    max_lr: float = 1.0
    initial_lr: float = 1e-3
    warmup_frac: float = 0.05
    final_lr: float = 0.1
    batches_per_epoch: int = 1  # 1 = full batch; 2 = FeatureFinding's ``len(dataset) // 2``

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for JSON settings files)."""
        return asdict(self)

    @property
    def n_inputs(self) -> int:
        """``C(f, k)``, the size of the full dataset."""
        return comb(self.f, self.k)


SEED_SETTINGS: dict[str, KHotSetting] = {
    # count_groups_vary_seed.py
    "vary_seed": KHotSetting(
        50, 1, 2, "gelu", copy_tied=True, epochs=40_000, max_lr=2, initial_lr=1e-3, final_lr=0.2
    ),
    # MLnLoss.ipynb (first model): MLnE with power 4, half batches, a 300 000-epoch schedule of
    # which 10 000 epochs are run
    "mlne": KHotSetting(
        40,
        1,
        2,
        "relu",
        loss="mln",
        loss_power=4.0,
        epochs=10_000,
        schedule_epochs=300_000,
        max_lr=1.0,
        initial_lr=1e-3,
        final_lr=0.1,
        batches_per_epoch=2,
    ),
    # 1d-softmax.ipynb: f = 20, tied with a final bias, cross-entropy; then the 2-hot variant
    "softmax_1d": KHotSetting(
        20,
        1,
        1,
        "softmax",
        final_bias=True,
        loss="soft_ce",
        epochs=100_000,
        max_lr=0.8,
        initial_lr=0.2,
        final_lr=0.2,
    ),
    "softmax_1d_2hot": KHotSetting(
        20,
        2,
        1,
        "softmax",
        final_bias=True,
        loss="soft_ce",
        epochs=50_000,
        max_lr=0.8,
        initial_lr=0.2,
        final_lr=0.2,
    ),
    # 2d-bias.ipynb: f = 40 untied with a final bias, long SGD
    "2d_bias": KHotSetting(
        40,
        1,
        2,
        "relu",
        tied=False,
        final_bias=True,
        epochs=250_000,
        max_lr=5,
        initial_lr=1e-3,
        final_lr=2,
    ),
}


def reduced(setting: KHotSetting, epochs: int, f: int | None = None) -> KHotSetting:
    """``setting`` run for ``epochs`` (the schedule shrinks with it), optionally with fewer
    features."""
    return replace(
        setting,
        epochs=epochs,
        schedule_epochs=None if setting.schedule_epochs is None else epochs,
        f=setting.f if f is None else f,
    )


def train_config(setting: KHotSetting, seed: int = 0) -> TrainConfig:
    """The :class:`.train.TrainConfig` of ``setting`` (the scheduler acts once per epoch in
    FeatureFinding; here per step, with the per-epoch rates spread evenly over an epoch's steps)."""
    spe = setting.batches_per_epoch
    horizon = setting.schedule_epochs or setting.epochs
    sched = featurefinding_schedule(
        horizon, setting.max_lr, setting.initial_lr, setting.warmup_frac, setting.final_lr
    )
    batch = -(-setting.n_inputs // spe)
    return TrainConfig(
        steps=setting.epochs * spe,
        batch_size=batch if spe > 1 else setting.n_inputs,
        lr=setting.max_lr,
        optimizer=setting.optimizer,
        warmup_steps=sched["warmup_steps"] * spe,
        decay_rate=sched["decay_rate"] ** (1 / spe),
        initial_lr=setting.initial_lr,
        loss=setting.loss,
        loss_power=setting.loss_power,
        seed=seed,
        log_every=max(1, setting.epochs * spe // 100),
    )


def train_k_hot(
    setting: KHotSetting, n_seeds: int = 1, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[Net, TrainResult]:
    """Train ``n_seeds`` models (instances) on every k-hot input of ``setting``."""
    cfg = NetConfig(
        setting.f,
        setting.n,
        n_seeds,
        tied=setting.tied,
        copy_tied=setting.copy_tied,
        output_bias=setting.final_bias,
        output_act=setting.nonlinearity,
    )
    model = Net(cfg, seed=seed, device=device)
    x = all_k_hot(setting.f, setting.k, device=device)[None].expand(n_seeds, -1, -1).contiguous()
    res = train(model, FixedDataset(x), torch.ones(setting.f, device=device), train_config(setting))
    return model, res


def directions(model: Net, epsilon: float = 1e-5) -> list[int]:
    """Distinct unembedding directions per instance (FeatureFinding groups the rows of the
    unembedding ``W_outᵀ``; equal to the embedding when tied)."""
    Wout = model.unembed.detach().cpu().transpose(1, 2)
    return [len(A.group_vectors(Wout[i], epsilon)[0]) for i in range(Wout.shape[0])]


def group_count_vs_seed(
    n_seeds: int,
    setting: KHotSetting = SEED_SETTINGS["vary_seed"],
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[list[int], Tensor]:
    """Number of distinct directions (ε = 1e-5) of each of ``n_seeds`` runs, and final losses."""
    model, res = train_k_hot(setting, n_seeds, seed, device)
    return directions(model), res.final_loss
