"""Reference configurations of unit feature vectors, rows ``[n_features, n_hidden]``.

These are the uniform polytopes that trained toy models settle into (paper §7): a digon (antipodal
pair), regular polygons in 2-D, the tetrahedron in 3-D.
"""

import math

import torch
from torch import Tensor


def regular_polygon(k: int, phase: float = 0.0) -> Tensor:
    """``k`` unit vectors at angles ``phase + 2πi/k``, shape ``[k, 2]``."""
    theta = phase + 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return torch.stack([theta.cos(), theta.sin()], dim=-1)


def digon() -> Tensor:
    """Two antipodal features in one dimension, ``[2, 1]``."""
    return torch.tensor([[1.0], [-1.0]], dtype=torch.float64)


def tetrahedron() -> Tensor:
    """Four unit vectors with pairwise cosine -1/3 in 3-D, ``[4, 3]``."""
    v = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64)
    return v / math.sqrt(3.0)


def orthonormal(k: int) -> Tensor:
    """``k`` orthonormal features (no superposition), ``[k, k]``."""
    return torch.eye(k, dtype=torch.float64)
