"""Measurements of superposition on feature directions ``W`` of shape ``[..., n_features, n_hidden]``.

Row ``W_i`` is feature ``i``'s direction (the paper's column). Definitions (paper §3 and §7):

- represented: ``‖W_i‖ > 0.5``;
- ``‖W‖_F²`` counts "how many features are stored"; *dimensions per feature* is ``m / ‖W‖_F²``;
- interference of feature ``i``: ``Σ_{j≠i} (Ŵ_i·W_j)²`` — how much other features project onto it;
- feature dimensionality ``D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²`` — the fraction of a dimension that feature
  ``i`` gets (1 alone, 1/2 in an antipodal pair, 2/3 in a triangle, 2/5 in a pentagon, ...).
"""

import math

import torch
from torch import Tensor


def feature_norms(W: Tensor) -> Tensor:
    """``‖W_i‖``, shape ``[..., n_features]``."""
    return W.norm(dim=-1)


def represented(W: Tensor, threshold: float = 0.5) -> Tensor:
    """Boolean mask of features with ``‖W_i‖ > threshold``, ``[..., n_features]``."""
    return feature_norms(W) > threshold


def n_represented(W: Tensor, threshold: float = 0.5) -> Tensor:
    """Number of represented features, ``[...]``."""
    return represented(W, threshold).sum(dim=-1)


def frobenius_sq(W: Tensor) -> Tensor:
    """``‖W‖_F²``, shape ``[...]``."""
    return (W**2).sum(dim=(-2, -1))


def dims_per_feature(W: Tensor) -> Tensor:
    """``m / ‖W‖_F²`` (hidden dimensions per stored feature), shape ``[...]``."""
    return W.shape[-1] / frobenius_sq(W)


def _projections(W: Tensor, eps: float) -> Tensor:
    """``P[..., i, j] = Ŵ_i · W_j``."""
    unit = W / W.norm(dim=-1, keepdim=True).clamp_min(eps)
    return unit @ W.transpose(-1, -2)


def interference(W: Tensor, eps: float = 1e-8) -> Tensor:
    """``Σ_{j≠i} (Ŵ_i·W_j)²`` per feature, shape ``[..., n_features]``."""
    p2 = _projections(W, eps) ** 2
    return p2.sum(dim=-1) - torch.diagonal(p2, dim1=-2, dim2=-1)


def feature_dimensionality(W: Tensor, eps: float = 1e-8) -> Tensor:
    """``D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)²`` per feature, shape ``[..., n_features]``.

    Features with ``‖W_i‖ < eps`` get 0.
    """
    num = W.norm(dim=-1) ** 2
    den = (_projections(W, eps) ** 2).sum(dim=-1)
    return torch.where(num > eps**2, num / den.clamp_min(eps**2), torch.zeros_like(num))


def group_vectors(
    W: Tensor, epsilon: float = 1e-5, min_norm: float = 0.01
) -> tuple[list[list[int]], Tensor]:
    """Group the rows of one instance ``W [n, m]`` that point the same way (FeatureFinding).

    Rows with norm below ``min_norm`` are skipped. Each row joins the first group whose first
    member's direction ``c`` satisfies ``|Ŵ_i·c - 1| < epsilon``, else it starts a new group.
    Returns the groups (row indices) and each group's mean unit direction ``[n_groups, m]``.
    """
    if W.ndim != 2:
        raise ValueError(
            f"group_vectors takes one instance [n_features, n_hidden], got {tuple(W.shape)}"
        )
    groups: list[list[int]] = []
    reps: list[Tensor] = []
    norms = W.norm(dim=-1)
    for i in range(W.shape[0]):
        if float(norms[i]) < min_norm:
            continue
        u = W[i] / norms[i]
        for g, c in zip(groups, reps, strict=True):
            if abs(float(u @ c) - 1.0) < epsilon:
                g.append(i)
                break
        else:
            groups.append([i])
            reps.append(u)
    unit = W / norms.clamp_min(1e-30)[:, None]
    directions = (
        torch.stack([unit[g].mean(dim=0) for g in groups]) if groups else W.new_zeros(0, W.shape[1])
    )
    return groups, directions


def count_directions(W: Tensor, min_norm: float = 0.01, min_angle_deg: float = 10.0) -> int:
    """Number of distinct directions among the features of one instance ``[n, m]``.

    Every feature with ``‖W_i‖ >= min_norm`` counts (the FeatureFinding cut-off; feature norms
    can be far below the "represented" 0.5 in untied or bias-free models and still carry a
    direction). Two features share a direction when the angle between them is below
    ``min_angle_deg`` (:func:`group_vectors` with ``epsilon = 1 - cos(min_angle_deg)``);
    antipodal features count as two directions.
    """
    if W.ndim != 2:
        raise ValueError(
            f"count_directions takes one instance [n_features, n_hidden], got {tuple(W.shape)}"
        )
    eps = 1.0 - math.cos(math.radians(min_angle_deg))
    return len(group_vectors(W, eps, min_norm)[0])


def sorted_angles_2d(W: Tensor, threshold: float = 0.5) -> Tensor:
    """Angles (degrees, ascending in ``[0, 360)``) of represented features of a 2-D instance."""
    if W.ndim != 2 or W.shape[-1] != 2:
        raise ValueError(
            f"sorted_angles_2d needs one instance [n_features, 2], got {tuple(W.shape)}"
        )
    rows = W[represented(W, threshold)]
    return torch.rad2deg(torch.atan2(rows[:, 1], rows[:, 0])).remainder(360.0).sort().values


def angular_gaps_2d(W: Tensor, threshold: float = 0.5) -> Tensor:
    """Gaps (degrees) between consecutive represented directions around the circle; sums to 360."""
    a = sorted_angles_2d(W, threshold)
    if a.numel() == 0:
        return a
    return torch.diff(torch.cat([a, a[:1] + 360.0]))


def self_gain(W_in: Tensor, W_out: Tensor) -> Tensor:
    """``W_in[i] · W_out[:, i]``: how much of feature ``i`` comes back at output ``i``, ``[..., n]``.

    ``W_in`` is ``[..., n, m]`` and ``W_out`` is ``[..., m, n]``; for tied weights this is ``‖W_i‖²``.
    """
    return (W_in * W_out.transpose(-1, -2)).sum(dim=-1)


def n_represented_untied(W_in: Tensor, W_out: Tensor, threshold: float = 0.5) -> Tensor:
    """Features with ``self_gain > threshold²`` (equals :func:`n_represented` when tied)."""
    return (self_gain(W_in, W_out) > threshold**2).sum(dim=-1)
