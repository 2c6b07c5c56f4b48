"""Sampler statistics, the embedding, and the task targets."""

import numpy as np
import pytest
import torch

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.data import (
    POWER_LAW_EXPONENT,
    TaskData,
    feature_probabilities,
    make_embedder,
    sample_features,
)


def seed_law_numpy(N: int, eps: float) -> np.ndarray:
    """Independent float64 transcription of the seed's clipped power law."""
    law = np.arange(1, N + 1, dtype=np.float64) ** -1.1
    return np.minimum(1.0, law * N * eps / law.sum())


def water_filled_law_numpy(N: int, eps: float) -> np.ndarray:
    """Independent computation: bisect for c with sum(min(1, c i^-1.1)) = N eps."""
    law = np.arange(1, N + 1, dtype=np.float64) ** -1.1
    lo, hi = 0.0, float(N)
    for _ in range(200):
        c = (lo + hi) / 2
        lo, hi = (c, hi) if np.minimum(1.0, c * law).sum() < N * eps else (lo, c)
    return np.minimum(1.0, (lo + hi) / 2 * law)


@pytest.mark.parametrize(
    ("sample_kind", "expected"),
    [("equal", 8.0), ("power-law", 7.4692), ("power-law-filled", 8.0)],
)
def test_mean_active_features(sample_kind: str, expected: float) -> None:
    N, eps, batch = 512, 1 / 64, 20_000
    probs = feature_probabilities(N, eps, sample_kind).float()
    assert probs.sum().item() == pytest.approx(expected, abs=1e-4)
    v = sample_features(batch, probs, torch.Generator().manual_seed(0))
    n_active = (v != 0).sum(dim=1).float()
    # Standard error of the mean is < sqrt(8 / 20000) = 0.02.
    assert n_active.mean().item() == pytest.approx(expected, abs=0.1)
    active = v[v != 0]
    assert active.min().item() >= 0.0
    assert active.max().item() < 1.0
    assert active.mean().item() == pytest.approx(0.5, abs=0.01)  # uniform [0, 1) values


def test_equal_sampler_has_flat_frequencies() -> None:
    probs = feature_probabilities(64, 1 / 8, "equal").float()
    v = sample_features(50_000, probs, torch.Generator().manual_seed(1))
    freq = (v != 0).float().mean(dim=0)
    assert torch.allclose(freq, torch.full_like(freq, 1 / 8), atol=0.01)


@pytest.mark.parametrize(("N", "eps"), [(512, 1 / 64), (128, 1 / 16), (64, 1 / 4), (100, 0.3)])
def test_power_law_is_the_seeds_clipped_law(N: int, eps: float) -> None:
    p = feature_probabilities(N, eps, "power-law").numpy()
    np.testing.assert_allclose(p, seed_law_numpy(N, eps), rtol=2e-6)
    assert p.sum() < N * eps  # the clipped mass is lost, as in the seed


@pytest.mark.parametrize(("N", "eps"), [(512, 1 / 64), (128, 1 / 16), (64, 1 / 4), (100, 0.3)])
def test_water_filled_law_matches_a_bisection(N: int, eps: float) -> None:
    p = feature_probabilities(N, eps, "power-law-filled").numpy()
    np.testing.assert_allclose(p, water_filled_law_numpy(N, eps), rtol=1e-9, atol=1e-12)


def test_water_filled_probabilities_follow_the_law_and_sum_to_n_eps() -> None:
    N, eps = 512, 1 / 64
    p = feature_probabilities(N, eps, "power-law-filled")
    assert p.sum().item() == pytest.approx(N * eps, rel=1e-9)
    assert p.max().item() <= 1.0
    assert (p[1:] <= p[:-1]).all()  # decreasing in the feature index
    assert p[0].item() == 1.0  # at N eps = 8 the head of the law is clipped
    i = torch.arange(1, N + 1, dtype=torch.float64)
    free = p < 1.0
    ratio = p[free] / i[free] ** -POWER_LAW_EXPONENT
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-9)


@pytest.mark.parametrize("sample_kind", ["power-law", "power-law-filled"])
def test_power_law_empirical_frequencies_match_probabilities(sample_kind: str) -> None:
    p = feature_probabilities(128, 1 / 16, sample_kind)
    v = sample_features(40_000, p.float(), torch.Generator().manual_seed(2))
    freq = (v != 0).double().mean(dim=0)
    assert torch.allclose(freq, p, atol=0.01)
    assert freq[0] > 5 * freq[-1]


def test_embedder_columns_are_unit_and_spread() -> None:
    N, m = 512, 64
    E = make_embedder(N, m, torch.Generator().manual_seed(0))
    assert E.shape == (m, N)
    assert torch.allclose(E.norm(dim=0), torch.ones(N), atol=1e-5)
    # Rows of the orthonormalised basis have norm ~ sqrt(m/N) before rescaling, so E E^T ~ (N/m) I.
    gram = E @ E.T / (N / m)
    assert torch.allclose(gram.diagonal(), torch.ones(m), atol=0.1)
    off = gram - torch.diag(gram.diagonal())
    assert off.abs().max().item() < 0.1
    again = make_embedder(N, m, torch.Generator().manual_seed(0))
    assert torch.equal(E, again)


def test_abs_task_input_is_difference_and_target_its_abs() -> None:
    config = RunConfig(N=256, m=32, k=8, eps=1 / 16, task="abs")
    data = TaskData(config)
    assert torch.allclose(data.probs, torch.full((256,), 1 / 32))  # eps / 2 per sample
    replay = torch.Generator().set_state(data.generator.get_state())
    inputs, targets = data.batch(20_000)
    v = sample_features(20_000, data.probs, replay) - sample_features(20_000, data.probs, replay)
    assert torch.allclose(inputs, v @ data.embedder.T)
    assert torch.equal(targets, v.abs())
    # Two samples at eps / 2 give about eps * N active features in the difference.
    assert (targets != 0).sum(dim=1).float().mean().item() == pytest.approx(256 / 16, rel=0.03)


def test_reprojector_target_is_second_embedding() -> None:
    config = RunConfig(N=64, m=8, k=8, eps=1 / 8, task="re-projector")
    data = TaskData(config)
    assert data.output_embedder is not None
    assert not torch.allclose(data.output_embedder, data.embedder)
    inputs, targets = data.batch(16)
    assert targets.shape == (16, 8) == inputs.shape
    assert config.output_dim == 8
