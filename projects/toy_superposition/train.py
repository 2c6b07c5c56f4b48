"""The training loop: one optimiser over all instances of a batched model.

Loss per instance ``k`` (instances never interact, so their losses are summed for the backward):

- ``"mse"``: ``mean_{batch, i} I_i (target_i - y_i)²`` — the paper's importance-weighted MSE;
- ``"ce"``: importance-weighted cross-entropy of the logits against ``argmax(target)`` (for
  softmax models fed one-hot inputs; ``I`` weights each class);
- ``"soft_ce"``: ``-mean_batch sum_i I_i target_i log softmax(y)_i`` — cross-entropy against the
  target vector itself (FeatureFinding's k-hot targets; equals ``"ce"`` for one-hot targets);
- ``"mln"``: FeatureFinding's MLnE loss, ``mean_{batch, i} I_i |target_i - y_i|^p`` with
  ``p = loss_power`` (``p = 2`` is ``"mse"``).

Learning rate: linear warm-up over ``warmup_steps`` (from 0, or from ``initial_lr`` as
FeatureFinding's scheduler does), then ``lr * decay_rate ** (step - warmup)``; see
:func:`featurefinding_schedule` for that repository's parameterisation.
Data come from a :class:`Sampler`: fresh samples every step (the paper's infinite-data setting),
or a fixed dataset visited in full batches or shuffled mini-batches (:class:`FixedDataset`).
"""

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from projects.toy_superposition.data import feature_probability, sample_sparse

LossKind = Literal["mse", "ce", "soft_ce", "mln"]


class Sampler(Protocol):
    """Returns ``(inputs, targets)``, each ``[n_instances, batch, ...]``."""

    def __call__(self, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]: ...


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (plain dataclass; ``to_dict`` for JSON)."""

    steps: int = 5000
    batch_size: int = 1024
    lr: float = 1e-3
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    weight_decay: float = 0.0
    momentum: float = 0.0
    warmup_steps: int = 0
    decay_rate: float = 1.0
    loss: LossKind = "mse"
    seed: int = 0
    log_every: int = 100
    initial_lr: float | None = None
    loss_power: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for JSON settings files)."""
        return asdict(self)


@dataclass
class TrainResult:
    """Loss per instance at each logged step: ``losses[t, k]`` at ``steps[t]``."""

    steps: list[int] = field(default_factory=list)
    losses: list[Tensor] = field(default_factory=list)

    @property
    def final_loss(self) -> Tensor:
        """Per-instance loss at the last logged step, ``[n_instances]``."""
        return self.losses[-1]

    def as_tensor(self) -> Tensor:
        """``[n_logged_steps, n_instances]``."""
        return torch.stack(self.losses)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then exponential decay.

    Without ``initial_lr`` the warm-up is ``lr * (step + 1) / warmup_steps``; with it, it runs from
    ``initial_lr`` at step 0 towards ``lr`` (``initial_lr + step * (lr - initial_lr) / warmup``).
    """
    if step < cfg.warmup_steps:
        if cfg.initial_lr is None:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        return cfg.initial_lr + step * (cfg.lr - cfg.initial_lr) / cfg.warmup_steps
    return cfg.lr * cfg.decay_rate ** (step - cfg.warmup_steps)


def featurefinding_schedule(
    steps: int, max_lr: float, initial_lr: float, warmup_frac: float, final_lr: float
) -> dict[str, Any]:
    """FeatureFinding's warm-up scheduler as :class:`TrainConfig` fields: ``int(steps *
    warmup_frac)`` warm-up steps from ``initial_lr`` to ``max_lr``, then a decay that reaches
    ``final_lr`` after ``steps * (1 - warmup_frac)`` more steps."""
    if not 0 <= warmup_frac < 1:
        raise ValueError(f"warmup_frac must lie in [0, 1), got {warmup_frac}")
    if min(max_lr, initial_lr, final_lr) <= 0:
        raise ValueError(
            f"learning rates must be positive, got max {max_lr}, initial {initial_lr}, "
            f"final {final_lr}"
        )
    return {
        "steps": steps,
        "lr": max_lr,
        "initial_lr": initial_lr,
        "warmup_steps": int(steps * warmup_frac),
        "decay_rate": (final_lr / max_lr) ** (1 / (steps * (1 - warmup_frac))),
    }


def sparse_sampler(
    n_instances: int,
    n_features: int,
    sparsity: float | Sequence[float] | Tensor,
    normalised: bool = False,
    device: torch.device | str = "cpu",
) -> Sampler:
    """Fresh sparse-uniform features each step; the target is the input (autoencoding).

    ``sparsity`` is one value or one per instance.
    """
    prob = feature_probability(sparsity, device)
    if prob.numel() == 1:
        prob = prob.expand(n_instances)
    if prob.numel() != n_instances:
        raise ValueError(f"got {prob.numel()} sparsities for {n_instances} instances")

    def sample(batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        x = sample_sparse(n_instances, batch, n_features, prob, gen, normalised, device)
        return x, x

    return sample


class FixedDataset:
    """A finite dataset ``(x, y)`` of ``[n_instances, N, ...]`` tensors.

    ``batch >= N`` returns the whole set (full-batch training); smaller batches walk a fresh random
    permutation each epoch (mini-batch SGD).
    """

    def __init__(self, x: Tensor, y: Tensor | None = None) -> None:
        self.x, self.y = x, x if y is None else y
        self._order: Tensor | None = None
        self._pos = 0

    def __len__(self) -> int:
        return self.x.shape[1]

    def __call__(self, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        n = len(self)
        if batch >= n:
            return self.x, self.y
        if self._order is None or self._pos + batch > n:
            self._order = torch.randperm(n, generator=gen).to(self.x.device)
            self._pos = 0
        idx = self._order[self._pos : self._pos + batch]
        self._pos += batch
        return self.x[:, idx], self.y[:, idx]


def instance_loss(
    y: Tensor, target: Tensor, importance: Tensor, kind: LossKind = "mse", power: float = 2.0
) -> Tensor:
    """Per-instance loss ``[n_instances]`` (see module docstring); ``importance`` broadcasts to
    ``[n_instances, 1, d_out]`` from ``[d_out]`` or ``[n_instances, d_out]``; ``power`` is the
    exponent of ``"mln"``."""
    imp = importance if importance.ndim == 1 else importance[:, None, :]
    if kind == "mse":
        return (imp * (target - y) ** 2).mean(dim=(1, 2))
    if kind == "mln":
        if power <= 0:
            raise ValueError(f"the MLnE power must be positive, got {power}")
        return (imp * (target - y).abs() ** power).mean(dim=(1, 2))
    if kind == "soft_ce":
        return -(imp * target * F.log_softmax(y, dim=-1)).sum(dim=-1).mean(dim=1)
    if kind == "ce":
        labels = target.argmax(dim=-1)
        logp = F.log_softmax(y, dim=-1)
        nll = -logp.gather(-1, labels[..., None])[..., 0]
        w = imp.expand_as(y).gather(-1, labels[..., None])[..., 0]
        return (w * nll).mean(dim=1)
    raise ValueError(f"unknown loss {kind!r}; use 'mse', 'ce', 'soft_ce' or 'mln'")


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named in ``cfg``."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use adamw, adam or sgd")


def train(
    model: nn.Module,
    data: Sampler,
    importance: Tensor,
    cfg: TrainConfig,
    callback: Callable[[int, nn.Module], None] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` in place on ``data`` and return the logged per-instance losses.

    ``callback(step, model)`` runs every ``cfg.log_every`` steps and after the last one (use it to
    record biases, Hessians, ...). Interrupting leaves a valid, partly trained model.
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    opt = make_optimizer(model.parameters(), cfg)
    importance = importance.to(device)
    result = TrainResult()
    for step in tqdm(range(cfg.steps), disable=not progress, desc="train"):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, target = data(cfg.batch_size, gen)
        losses = instance_loss(model(x), target, importance, cfg.loss, cfg.loss_power)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            result.steps.append(step)
            result.losses.append(losses.detach().cpu())
            if callback is not None:
                callback(step, model)
    return result
