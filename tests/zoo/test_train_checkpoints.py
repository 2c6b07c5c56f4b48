"""train_model's checkpoint callback: called at the asked steps, in eval mode, without changing
the weights that training produces."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens.zoo.model import ZooModelConfig, build_model
from feature_lens.zoo.train import ModelTrainingConfig, train_model

TINY = ZooModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=12)
TRAINING = ModelTrainingConfig(steps=6, batch_size=4, warmup_steps=2)


def _train(**kwargs: Any) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights depend on the thread count
    try:
        model, _ = train_model(TINY, TRAINING, seed=2, **kwargs)
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_callback_sees_each_step_and_leaves_training_unchanged() -> None:
    seen: dict[int, dict[str, torch.Tensor]] = {}
    modes: list[bool] = []

    def record(step: int, model: Any) -> None:
        modes.append(model.training)
        seen[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        torch.rand(100)  # a callback that draws random numbers must not change training
        model(torch.zeros(1, 3, dtype=torch.long), return_type="loss").backward()

    plain = _train()
    with_callback = _train(checkpoint_steps=[0, 1, 3, 6], on_checkpoint=record)
    assert sorted(seen) == [0, 1, 3, 6]
    assert modes == [False] * 4
    assert all(torch.equal(plain[k], with_callback[k]) for k in plain)
    # step 6 is the end of training, step 0 the seeded initialisation
    assert all(torch.equal(seen[6][k], plain[k]) for k in plain)
    initial = build_model(TINY, seed=2).state_dict()
    assert all(torch.equal(seen[0][k], initial[k]) for k in initial)
    # each checkpoint is a different set of weights
    assert not torch.equal(seen[1]["embed.W_E"], seen[0]["embed.W_E"])
    assert not torch.equal(seen[3]["embed.W_E"], seen[1]["embed.W_E"])


def test_bad_checkpoint_steps_are_rejected() -> None:
    with pytest.raises(ValueError, match="checkpoint_steps"):
        train_model(TINY, TRAINING, checkpoint_steps=[7], on_checkpoint=lambda s, m: None)
    with pytest.raises(ValueError, match="on_checkpoint"):
        train_model(TINY, TRAINING, checkpoint_steps=[1])
