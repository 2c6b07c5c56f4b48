"""The 2-features-in-1-dimension phase change: closed forms, quadrature, Monte Carlo, training."""

import pytest
import torch

from projects.toy_superposition import phase as P
from projects.toy_superposition.train import TrainConfig


@pytest.mark.parametrize(("r", "d"), [(0.5, 0.9), (1.0, 0.3), (2.0, 0.05)])
def test_quadrature_reproduces_the_closed_form_losses(r: float, d: float) -> None:
    cf = P.closed_form_losses(r, d)
    assert P.expected_loss([1, 0], [0, d / 2], r, d) == pytest.approx(cf["first"], rel=1e-9)
    assert P.expected_loss([0, 1], [d / 2, 0], r, d) == pytest.approx(cf["second"], rel=1e-9)
    assert P.expected_loss([1, -1], [0, 0], r, d) == pytest.approx(cf["antipodal"], rel=1e-3)


def test_expected_loss_matches_monte_carlo() -> None:
    gen = torch.Generator().manual_seed(0)
    r, d = 0.7, 0.4
    w, b = torch.tensor([0.9, -0.6]), torch.tensor([0.05, 0.1])
    n = 2_000_000
    x = torch.rand(n, 2, generator=gen) * (torch.rand(n, 2, generator=gen) < d)
    y = torch.relu((x @ w)[:, None] * w + b)
    mc = ((x - y) ** 2 * torch.tensor([1.0, r])).mean().item()
    assert P.expected_loss(w.tolist(), b.tolist(), r, d) == pytest.approx(mc, rel=0.01)


def test_closed_form_boundary_against_first_feature_only() -> None:
    # Antipodal(1,-1,0) beats "first" exactly when d < 4r / (2 + 5r), for r < 1.
    for r in (0.3, 0.6):
        d_star = 4 * r / (2 + 5 * r)
        assert P.analytic_phase(r, 0.97 * d_star, optimise=False) == "antipodal"
        assert P.analytic_phase(r, 1.03 * d_star, optimise=False) == "first"


def test_analytic_phases_in_each_region() -> None:
    assert P.analytic_phase(0.5, 0.9) == "first"  # dense, weak second feature: drop it
    assert P.analytic_phase(2.0, 0.9) == "second"  # dense, second feature more important
    assert P.analytic_phase(0.5, 0.05) == "antipodal"  # sparse: superpose
    assert P.analytic_phase(2.0, 0.05) == "antipodal"
    # Optimising the antipodal solution's bias only widens its region.
    d_star = 4 * 0.5 / (2 + 5 * 0.5)
    assert P.analytic_phase(0.5, 1.03 * d_star) == "antipodal"


def test_trained_models_land_in_the_analytic_phase() -> None:
    points = [(0.4, 0.8), (0.5, 0.05), (2.5, 0.8), (1.5, 0.1)]
    emp = P.empirical_phases(
        [p[0] for p in points],
        [p[1] for p in points],
        TrainConfig(steps=1500, batch_size=512, lr=3e-2),
        n_seeds=4,
    )
    assert (
        emp.phases
        == [P.analytic_phase(*p) for p in points]
        == ["first", "antipodal", "second", "antipodal"]
    )
