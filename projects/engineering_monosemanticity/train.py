"""Training loop, faithful to the original code (``model3.py`` of Jermyn et al.).

Per step: draw a fresh batch, loss = sum over output dims and batch of squared error / batch size,
plus ``reg`` x (sum of |hidden activations|) / batch size; LAMB step (``torch_optimizer.Lamb``,
default betas/eps); the cosine schedule steps once (``lr_t = lr (1 + cos(pi t / lr_period)) / 2``,
periodic, identical to ``CosineAnnealingLR(T_max=lr_period, eta_min=0)``); during the first half
of training the hidden biases are then shrunk by the factor ``1 - decay * learning_rate`` (the
base learning rate, not the scheduled one). The reconstruction loss is logged every 16 steps and
the monosemanticity metrics after 0, 1, 2, 4, ..., 2^L steps (log2-spaced, as the original saved
its model snapshots).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch_optimizer
from tqdm.auto import tqdm

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.data import TaskData
from projects.engineering_monosemanticity.metrics import MonoStats, mono_stats
from projects.engineering_monosemanticity.model import ToyModel

LOSS_EVERY = 16
EVAL_BATCH = 4096


def cosine_factor(step: int, period: int) -> float:
    """Multiplier of the base learning rate after ``step`` scheduler steps."""
    return 0.5 * (1.0 + math.cos(math.pi * step / period))


@dataclass
class Snapshot:
    """Metrics after ``step`` optimiser steps."""

    step: int
    stats: MonoStats


@dataclass
class TrainResult:
    """What one run produced: the model, its data source, and the tracked metrics."""

    config: RunConfig
    model: ToyModel
    data: TaskData
    loss_steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    final_loss: float = math.nan
    threads: int = 1


def task_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed squared error divided by the batch size (the original's loss)."""
    return ((outputs - targets) ** 2).sum() / outputs.shape[0]


@torch.no_grad()
def apply_bias_decay(
    model: ToyModel, step: int, total_steps: int, decay: float, learning_rate: float
) -> None:
    """After optimiser step ``step`` (0-based): shrink hidden biases if in the first half."""
    if decay and step < total_steps / 2:
        model.encoder.bias.mul_(1.0 - decay * learning_rate)


def train(
    config: RunConfig,
    device: str | torch.device = "cpu",
    progress: bool = False,
    on_step: Callable[[int], None] | None = None,
    threads: int = 1,
) -> TrainResult:
    """Train one toy model as ``config`` says.

    On CPU the run uses exactly ``threads`` torch threads (the caller's setting is restored
    afterwards): parallel reductions split work by thread count, so the bits of a run depend on
    it. Given the seed, the thread count and the machine/software stack, a run is bit-for-bit
    reproducible; across CPUs or kernel builds it is not (README, Determinism).

    Args:
        config: the run's configuration.
        device: where to train (``cpu``, ``cuda``...).
        progress: show a tqdm bar.
        on_step: called with the number of completed steps (for tests and custom logging).
        threads: torch CPU threads for this run (default 1, as the CLI).

    Returns:
        A ``TrainResult`` with the trained model, loss curve, log2-spaced snapshots and the final
        loss on a held-out batch of 4096 samples.
    """
    device = torch.device(device)
    if threads < 1:
        raise ValueError(f"threads={threads} must be at least 1")
    saved = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        result = _train(config, device, progress, on_step)
    finally:
        torch.set_num_threads(saved)
    result.threads = threads if device.type == "cpu" else saved
    return result


def _train(
    config: RunConfig,
    device: torch.device,
    progress: bool,
    on_step: Callable[[int], None] | None,
) -> TrainResult:
    data = TaskData(config, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ToyModel.from_config(config).to(device)
    optimizer = torch_optimizer.Lamb(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda t: cosine_factor(t, config.lr_period)
    )
    result = TrainResult(config=config, model=model, data=data)
    result.snapshots.append(Snapshot(0, mono_stats(model, data.embedder)))
    steps = config.training_steps

    for i in tqdm(range(steps), disable=not progress, desc="train", leave=False):
        inputs, targets = data.batch(config.batch_size)
        hidden = model.activations(inputs)
        loss = task_loss(model.decoder(hidden), targets)
        total = loss + config.reg * hidden.abs().sum() / config.batch_size if config.reg else loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        apply_bias_decay(model, i, steps, config.decay, config.learning_rate)
        if i % LOSS_EVERY == 0:
            result.loss_steps.append(i)
            result.losses.append(loss.item())
        done = i + 1
        if done & (done - 1) == 0:  # a power of two
            result.snapshots.append(Snapshot(done, mono_stats(model, data.embedder)))
        if on_step is not None:
            on_step(done)

    result.final_loss = evaluate_loss(model, data, config.seed)
    return result


@torch.no_grad()
def evaluate_loss(
    model: ToyModel, data: TaskData, seed: int, batch_size: int = EVAL_BATCH
) -> float:
    """Task loss (no regulariser) on a fresh batch drawn from its own seeded stream."""
    saved = data.generator.get_state()
    data.generator.manual_seed(seed + 10_000)
    inputs, targets = data.batch(batch_size)
    data.generator.set_state(saved)
    return float(task_loss(model(inputs), targets))
