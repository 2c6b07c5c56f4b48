"""Bias hysteresis: sweep the sparsity up, then down, warm-starting each stage from the last.

At each sparsity the same single model is trained further; we record its weights, bias and the
number of represented features. If the up-sweep and down-sweep disagree at the same sparsity, the
model's state depends on its history — the solution it is in is a local minimum that training does
not leave, which is what happens near a first-order phase change.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from projects.toy_superposition.analysis import n_represented
from projects.toy_superposition.models import Net, NetConfig
from projects.toy_superposition.train import TrainConfig, sparse_sampler, train


@dataclass
class SweepRecord:
    """State after training at each sparsity of one sweep, in sweep order."""

    sparsities: list[float] = field(default_factory=list)
    n_represented: list[int] = field(default_factory=list)
    bias: list[Tensor] = field(default_factory=list)
    W: list[Tensor] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


def sweep(
    model: Net, sparsities: Sequence[float], importance: Tensor, cfg: TrainConfig
) -> SweepRecord:
    """Train ``model`` (one instance) at each sparsity in turn, in place; record its state."""
    if model.cfg.n_instances != 1:
        raise ValueError(f"sweep trains one instance, got n_instances={model.cfg.n_instances}")
    rec = SweepRecord()
    device = model.W_in.device
    for i, s in enumerate(sparsities):
        stage = TrainConfig(**{**cfg.to_dict(), "seed": cfg.seed + i})
        res = train(
            model, sparse_sampler(1, model.cfg.n_features, s, device=device), importance, stage
        )
        W = model.W_in.detach().cpu()[0]
        rec.sparsities.append(float(s))
        rec.n_represented.append(int(n_represented(W)))
        rec.W.append(W.clone())
        b = model.b_out
        rec.bias.append(torch.zeros(0) if b is None else b.detach().cpu()[0].clone())
        rec.loss.append(float(res.final_loss[0]))
    return rec


def hysteresis_loop(
    cfg_model: NetConfig,
    sparsities: Sequence[float],
    importance: Tensor,
    cfg: TrainConfig,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[SweepRecord, SweepRecord]:
    """Sweep ``sparsities`` in the given order, then back in reverse, with one warm model."""
    model = Net(cfg_model, seed=seed, device=device)
    up = sweep(model, sparsities, importance, cfg)
    down = sweep(model, list(reversed(sparsities)), importance, cfg)
    return up, down
