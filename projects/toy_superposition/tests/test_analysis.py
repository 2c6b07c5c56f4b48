"""Superposition measures against the known geometry of uniform polytopes (paper §7)."""

import math

import pytest
import torch

from projects.toy_superposition import analysis as A
from projects.toy_superposition import polytopes as P


@pytest.mark.parametrize(
    ("W", "expected"),
    [
        (P.orthonormal(3), 1.0),
        (P.digon(), 1 / 2),
        (P.regular_polygon(3), 2 / 3),
        (P.regular_polygon(4), 1 / 2),  # two orthogonal digons
        (P.regular_polygon(5), 2 / 5),
        (P.tetrahedron(), 3 / 4),
    ],
)
def test_feature_dimensionality_of_uniform_polytopes(W: torch.Tensor, expected: float) -> None:
    D = A.feature_dimensionality(W)
    assert torch.allclose(D, torch.full_like(D, expected), atol=1e-9)
    # The polytopes are tight frames: their dimensionalities add up to the space's dimension.
    assert D.sum().item() == pytest.approx(W.shape[1])


def test_feature_dimensionality_matches_a_direct_loop_and_is_invariant() -> None:
    torch.manual_seed(0)
    W = torch.randn(7, 3, dtype=torch.float64)
    D = A.feature_dimensionality(W)
    for i in range(7):
        wi = W[i] / W[i].norm()
        den = sum(float(wi @ W[j]) ** 2 for j in range(7))
        assert D[i].item() == pytest.approx(float(W[i] @ W[i]) / den)
    Q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    assert torch.allclose(A.feature_dimensionality(3.0 * W @ Q), D)
    # Interference is the denominator minus the feature's own norm squared.
    assert torch.allclose(A.interference(W), W.norm(dim=-1) ** 2 / D - W.norm(dim=-1) ** 2)


def test_frobenius_and_dims_per_feature() -> None:
    W = P.regular_polygon(5)
    assert A.frobenius_sq(W).item() == pytest.approx(5.0)
    assert A.dims_per_feature(W).item() == pytest.approx(2 / 5)
    batched = torch.stack([P.regular_polygon(5), 0.1 * P.regular_polygon(5)])
    assert A.n_represented(batched).tolist() == [5, 0]


def test_count_directions() -> None:
    pent = P.regular_polygon(5)
    assert A.count_directions(pent) == 5
    assert A.count_directions(P.digon()) == 2  # antipodal features are two directions
    dup = torch.cat([pent, 1.1 * pent[:2], 0.1 * pent[2:3]])  # duplicates and a dead feature
    assert A.count_directions(dup) == 5


def test_angular_gaps_of_a_rotated_pentagon() -> None:
    gaps = A.angular_gaps_2d(P.regular_polygon(5, phase=1.234))
    assert torch.allclose(gaps, torch.full((5,), 72.0, dtype=gaps.dtype), atol=1e-6)
    assert gaps.sum().item() == pytest.approx(360.0)
    assert math.isclose(A.sorted_angles_2d(P.regular_polygon(4)).tolist()[1], 90.0, abs_tol=1e-9)


def test_self_gain_equals_squared_norm_when_tied() -> None:
    torch.manual_seed(1)
    W = torch.randn(2, 6, 3)
    gain = A.self_gain(W, W.transpose(-1, -2))
    assert torch.allclose(gain, W.norm(dim=-1) ** 2)
    assert torch.equal(A.n_represented_untied(W, W.transpose(-1, -2)), A.n_represented(W))
    # Untied: a large encoder with a tiny decoder does not reproduce the feature.
    assert A.n_represented_untied(10 * W, 0.001 * W.transpose(-1, -2)).tolist() == [0, 0]
