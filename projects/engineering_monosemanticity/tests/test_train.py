"""The training recipe: schedule, bias decay, L1 penalty, determinism."""

import pytest
import torch
import torch_optimizer

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.model import ToyModel
from projects.engineering_monosemanticity.train import apply_bias_decay, cosine_factor, train

TINY = RunConfig(N=32, m=8, k=32, eps=1 / 16, log2_batch_size=6, log2_training_steps=7)


def test_cosine_factor_matches_torch_cosine_annealing() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch_optimizer.Lamb([param], lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0)
    for step in range(40):  # several periods: the original's schedule is periodic
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * cosine_factor(step, 8), abs=1e-9)
        opt.step()
        sched.step()


def test_bias_decay_only_in_first_half() -> None:
    model = ToyModel(4, 3, 4, initial_bias=-1.0)
    before = model.encoder.bias.detach().clone()
    apply_bias_decay(model, step=4, total_steps=10, decay=0.5, learning_rate=0.1)
    assert torch.allclose(model.encoder.bias, before * 0.95)
    apply_bias_decay(model, step=5, total_steps=10, decay=0.5, learning_rate=0.1)
    assert torch.allclose(model.encoder.bias, before * 0.95)


def test_initial_bias_offsets_the_default_init() -> None:
    torch.manual_seed(0)
    plain = ToyModel(8, 64, 8).encoder.bias.detach()
    torch.manual_seed(0)
    offset = ToyModel(8, 64, 8, initial_bias=-1.0).encoder.bias.detach()
    assert torch.allclose(offset, plain - 1.0)


def test_training_reduces_loss_and_is_deterministic() -> None:
    a = train(TINY)
    b = train(TINY)
    assert a.losses == b.losses
    assert a.final_loss == b.final_loss
    assert a.final_loss < 0.6 * a.losses[0]
    assert [s.step for s in a.snapshots] == [0, 1, 2, 4, 8, 16, 32, 64, 128]
    assert a.loss_steps == list(range(0, 128, 16))


def test_l1_penalty_shrinks_activations() -> None:
    def mean_activation(reg: float) -> float:
        result = train(TINY.replace(reg=reg, learning_rate=0.01))
        inputs, _ = result.data.batch(1024)
        return result.model.activations(inputs).abs().mean().item()

    assert mean_activation(0.3) < 0.5 * mean_activation(0.0)


def test_strong_decay_pulls_negative_bias_towards_zero() -> None:
    base = TINY.replace(initial_bias=-2.0, learning_rate=0.01)
    kept = train(base).snapshots[-1].stats.mean_bias
    decayed = train(base.replace(decay=20.0)).snapshots[-1].stats.mean_bias
    assert kept < -1.0
    assert decayed > kept + 0.5
