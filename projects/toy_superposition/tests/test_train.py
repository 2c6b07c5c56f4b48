"""The training loop's pieces against closed forms and torch's own implementations."""

import pytest
import torch
from torch.nn import functional as F

from projects.toy_superposition.train import FixedDataset, TrainConfig, instance_loss, lr_at


def test_warmup_then_exponential_decay() -> None:
    cfg = TrainConfig(lr=0.1, warmup_steps=4, decay_rate=0.9)
    assert [lr_at(s, cfg) for s in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lr_at(4, cfg) == pytest.approx(0.1)
    assert lr_at(14, cfg) == pytest.approx(0.1 * 0.9**10)


def test_importance_weighted_mse_per_instance() -> None:
    y, t = torch.rand(2, 3, 4), torch.rand(2, 3, 4)
    imp = torch.tensor([1.0, 0.5, 0.25, 0.0])
    loss = instance_loss(y, t, imp, "mse")
    for k in range(2):
        assert loss[k].item() == pytest.approx(((t[k] - y[k]) ** 2 * imp).mean().item())


def test_weighted_cross_entropy_matches_torch() -> None:
    logits = torch.randn(1, 6, 4)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    target = F.one_hot(labels, 4).float()[None] * 0.7
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    ours = instance_loss(logits, target, w, "ce")[0]
    ref = F.cross_entropy(logits[0], labels, weight=w, reduction="none").mean()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)


def test_fixed_dataset_full_batch_and_epochs() -> None:
    x = torch.arange(10.0).reshape(1, 10, 1)
    ds = FixedDataset(x)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(ds(100, gen)[0], x)
    seen = torch.cat([ds(5, gen)[0].flatten() for _ in range(2)])
    assert sorted(seen.tolist()) == list(range(10))  # one epoch visits every sample once
