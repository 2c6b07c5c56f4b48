"""Train the zoo transformer from scratch on the synthetic corpus.

A plain loop: AdamW, linear warm-up then linear decay, gradient clipping, next-token cross-entropy on
every position of fresh corpus batches (no batch is seen twice). Deterministic from the seed on a
fixed number of CPU threads.

Checkpoints: `train_model` can call `on_checkpoint(step, model)` after `step` optimiser updates for
each step in `checkpoint_steps` (0 = the initialisation, `steps` = the end). The model is in eval
mode during the call and goes back to train mode after it; the global torch RNG state is restored
too, so a callback cannot change the trained weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from feature_lens.zoo.corpus import corpus_batches
from feature_lens.zoo.model import ZooModelConfig, build_model


@dataclass(frozen=True)
class ModelTrainingConfig:
    """Optimisation settings of the zoo transformer (tokens seen = steps * batch_size * n_ctx)."""

    steps: int = 5000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 100
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0

    def to_dict(self) -> dict[str, float]:
        """Plain JSON-able form."""
        return asdict(self)


def _lr_factor(step: int, cfg: ModelTrainingConfig) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    decay = 1.0 - (1.0 - cfg.final_lr_fraction) * step / max(1, cfg.steps - 1)
    return warm * decay


def train_model(
    config: ZooModelConfig,
    training: ModelTrainingConfig,
    tokenizer: Any = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    checkpoint_steps: Sequence[int] = (),
    on_checkpoint: Callable[[int, Any], None] | None = None,
) -> tuple[Any, list[float]]:
    """Train a zoo `HookedTransformer` from scratch; returns it (eval mode) and the loss curve.

    The loss curve has one mean training loss (nats/token) per step. If `on_checkpoint` is given,
    it is called as `on_checkpoint(step, model)` after `step` updates for every step in
    `checkpoint_steps` (each in `[0, training.steps]`; 0 is the initial model), in eval mode; the
    weights trained are the same with or without it (gradients a callback leaves behind are reset
    before the next step, and the global RNG state is restored).
    """
    wanted = set(checkpoint_steps)
    if wanted and not 0 <= min(wanted) <= max(wanted) <= training.steps:
        raise ValueError(
            f"checkpoint_steps must lie in [0, {training.steps}] (the training steps), got "
            f"{sorted(wanted)}"
        )
    if wanted and on_checkpoint is None:
        raise ValueError("checkpoint_steps were given but no on_checkpoint callback to call")
    model = build_model(config, tokenizer, seed=seed, device=device)

    def checkpoint(step: int) -> None:
        if on_checkpoint is None or step not in wanted:
            return
        rng = torch.random.get_rng_state()
        model.eval()
        try:
            on_checkpoint(step, model)
        finally:
            model.train()
            torch.random.set_rng_state(rng)

    model.train()
    checkpoint(0)
    optimizer: Any = torch.optim.AdamW(
        model.parameters(), lr=training.lr, weight_decay=training.weight_decay, betas=(0.9, 0.98)
    )
    scheduler: Any = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, training))
    batches = corpus_batches(training.batch_size, seed=seed, split="train", n_ctx=config.n_ctx)
    losses: list[float] = []
    bar: Any = tqdm(range(training.steps), desc="model", disable=not progress, unit="step")
    for step in bar:
        tokens = next(batches).to(device)
        loss = model(tokens, return_type="loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
        checkpoint(step + 1)
    model.eval()
    return model, losses
