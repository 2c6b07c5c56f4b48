"""How the pipeline uses the ActivationBuffer: its counters, rows served once each from the token
stream, and the same token order at every checkpoint; and one SAE trained through it."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch

from feature_lens.zoo.corpus import corpus_batches
from feature_lens.zoo.model import ZooModelConfig, build_model
from projects.circuit_development.config import SaeSettings
from projects.circuit_development.saes import gather_activations

TINY = ZooModelConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=32, n_ctx=12)
SETTINGS = SaeSettings(n_rows=600, buffer_capacity=256, contexts_per_batch=4)
HOOKS = ["hook_embed", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model(TINY, seed=0)


def test_buffer_counters_add_up(model: Any) -> None:
    data, stats = gather_activations(model, HOOKS, SETTINGS, seed=0)
    batch = SETTINGS.buffer_capacity // 2
    assert all(rows.shape == (600, 16) for rows in data.values())
    assert stats["rows_served"] == math.ceil(600 / batch) * batch == stats["batches_served"] * batch
    assert stats["rows_added"] == stats["rows_served"] + stats["rows_stored"]
    # BOS is skipped: each context of 12 tokens gives 11 rows, in whole batches of 4 contexts
    assert stats["rows_added"] % (4 * 11) == 0
    assert stats["tokens_seen"] == stats["rows_added"] // 11 * 12
    assert stats["refills"] >= 3


def test_rows_come_from_the_stream_once_each(model: Any) -> None:
    data, stats = gather_activations(model, HOOKS, SETTINGS, seed=0)
    n_contexts = stats["tokens_seen"] // 12
    stream = corpus_batches(4, seed=1, split="train", n_ctx=12)  # the buffer's stream (seed + 1)
    tokens = torch.cat([next(stream) for _ in range(n_contexts // 4)])
    _, cache = model.run_with_cache(tokens)
    for hook in HOOKS[1:]:
        expected = cache[hook][:, 1:].reshape(-1, 16)
        nearest = torch.cdist(data[hook], expected).argmin(1)
        assert torch.allclose(data[hook], expected[nearest], atol=1e-5)
        # no row served twice: no value is served more often than it occurs in the stream (the
        # corpus repeats short prefixes, so equal activations do occur at different tokens)
        served = _counts(data[hook])
        available = _counts(expected)
        assert all(count <= available[key] for key, count in served.items())
        # served rows are spread over the stream, not taken in order
        assert nearest.float().std() > 0.2 * expected.shape[0]


def _counts(rows: torch.Tensor) -> dict[tuple[int, ...], int]:
    keys, counts = torch.unique((rows * 1e3).round().long(), dim=0, return_counts=True)
    return {tuple(k.tolist()): int(c) for k, c in zip(keys, counts, strict=True)}


def test_every_checkpoint_sees_the_same_tokens_in_the_same_order(model: Any) -> None:
    later = copy.deepcopy(model)  # "another checkpoint": same embeddings, different blocks
    with torch.no_grad():
        for name, param in later.named_parameters():
            if name.startswith("blocks."):
                param.add_(0.5 * torch.randn_like(param))
    data_a, _ = gather_activations(model, HOOKS, SETTINGS, seed=0)
    data_b, _ = gather_activations(later, HOOKS, SETTINGS, seed=0)
    assert torch.equal(data_a["hook_embed"], data_b["hook_embed"])
    assert not torch.allclose(data_a[HOOKS[1]], data_b[HOOKS[1]])
    data_c, _ = gather_activations(model, HOOKS, SETTINGS, seed=1)
    assert not torch.equal(data_a["hook_embed"], data_c["hook_embed"])
