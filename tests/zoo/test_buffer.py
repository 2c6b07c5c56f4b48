"""ActivationBuffer bookkeeping: counters, no replacement, rows equal to the model's activations."""

from __future__ import annotations

import itertools

import pytest
import torch

from feature_lens.training.buffer import ActivationBuffer
from feature_lens.zoo.model import ZooModelConfig, build_model

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.hook_attn_out"]


@pytest.fixture(scope="module")
def model() -> object:
    return build_model(ZooModelConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32, n_ctx=8))


def _token_batches(n_batches: int, batch: int = 4, seq: int = 8) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(3, 100, (batch, seq), generator=generator) for _ in range(n_batches)]


def test_counters_and_refills(model: object) -> None:
    batches = _token_batches(50)
    buffer = ActivationBuffer(model, iter(batches), HOOKS, capacity=100, batch_size=16)
    served = [buffer.next_batch() for _ in range(12)]
    assert buffer.batches_served == 12
    assert buffer.rows_served == 192
    assert buffer.rows_added == buffer.rows_served + buffer.rows_stored
    rows_per_batch = 4 * 7  # BOS position skipped
    assert buffer.tokens_seen == (buffer.rows_added // rows_per_batch) * 4 * 8
    # first refill fills to >= 100 rows (4 batches = 112); each later refill happens below 50 rows
    assert buffer.refills >= 2
    assert buffer.rows_stored >= 0
    assert all(b[h].shape == (16, 16) for b in served for h in HOOKS)


def test_rows_are_served_once_each_and_match_the_model(model: object) -> None:
    batches = _token_batches(6)
    buffer = ActivationBuffer(model, iter(batches), HOOKS, capacity=64, batch_size=8, seed=1)
    served = list(buffer)
    got = {h: torch.cat([b[h] for b in served]) for h in HOOKS}
    # the stream ran out: everything but a remainder smaller than one minibatch was served
    total = 6 * 4 * 7
    assert buffer.rows_added == total
    assert total - 8 < got[HOOKS[0]].shape[0] <= total
    assert buffer.rows_stored == total - got[HOOKS[0]].shape[0]
    _, cache = model.run_with_cache(torch.cat(batches))  # type: ignore[attr-defined]
    for hook in HOOKS:
        expected = cache[hook][:, 1:].reshape(-1, 16)
        # every served row is one of the expected rows, and no row is served twice
        distance = torch.cdist(got[hook], expected)
        nearest = distance.argmin(1)
        assert torch.allclose(got[hook], expected[nearest], atol=1e-5)
        assert nearest.unique().numel() == nearest.numel()
    # all hooks share the row order: the same token index for row i
    nearest_0 = torch.cdist(got[HOOKS[0]], cache[HOOKS[0]][:, 1:].reshape(-1, 16)).argmin(1)
    nearest_1 = torch.cdist(got[HOOKS[1]], cache[HOOKS[1]][:, 1:].reshape(-1, 16)).argmin(1)
    assert torch.equal(nearest_0, nearest_1)


def test_take_and_shuffling_is_seeded(model: object) -> None:
    def take(seed: int) -> torch.Tensor:
        stream = itertools.cycle(_token_batches(3))
        buffer = ActivationBuffer(model, stream, HOOKS, capacity=40, batch_size=8, seed=seed)
        return buffer.take(30)[HOOKS[0]]

    assert take(0).shape == (30, 16)
    assert torch.equal(take(0), take(0))
    assert not torch.equal(take(0), take(1))


def test_bad_sizes_are_rejected(model: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        ActivationBuffer(model, iter([]), HOOKS, capacity=10, batch_size=8)
    with pytest.raises(ValueError, match="hook_names"):
        ActivationBuffer(model, iter([]), [], capacity=10, batch_size=2)
