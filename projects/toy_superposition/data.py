"""Synthetic sparse features, as in Toy Models of Superposition §2.

Each feature ``x_i`` is 0 with probability ``S`` (the *sparsity*) and uniform in ``[0, 1)`` otherwise,
independently across features. Batched models train one instance per setting, so every sampler
returns ``[n_instances, batch, n_features]`` and takes a per-instance feature probability ``1 - S``.

Also here: importance schedules, one-hot / k-hot inputs (exactly one / k features active),
normalised inputs (each sample scaled to unit norm), and boolean "computation" targets.
"""

from collections.abc import Sequence
from itertools import combinations
from typing import Literal

import torch
from torch import Tensor

ImportanceKind = Literal["geometric", "uniform"]
BoolOp = Literal["and", "or", "xor", "nand", "nor"]


def feature_probability(
    sparsity: float | Sequence[float] | Tensor, device: torch.device | str = "cpu"
) -> Tensor:
    """Per-instance probability ``1 - S`` that a feature is active, shape ``[n_instances]``."""
    s = torch.as_tensor(sparsity, dtype=torch.float32, device=device).reshape(-1)
    if ((s < 0) | (s > 1)).any():
        raise ValueError(f"sparsity must lie in [0, 1], got {s.tolist()}")
    return 1.0 - s


def importance_schedule(
    n_features: int,
    kind: ImportanceKind = "geometric",
    base: float = 0.7,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Importance ``I_i`` of each feature, shape ``[n_features]``.

    ``"geometric"`` gives ``base**i`` (the paper uses 0.7 and 0.9); ``"uniform"`` gives ones.
    """
    if kind == "uniform":
        return torch.ones(n_features, device=device)
    if kind == "geometric":
        return base ** torch.arange(n_features, dtype=torch.float32, device=device)
    raise ValueError(f"unknown importance kind {kind!r}; use 'geometric' or 'uniform'")


def normalise(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale every sample (last axis) to unit L2 norm; all-zero samples stay zero."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def sample_sparse(
    n_instances: int,
    batch: int,
    n_features: int,
    prob: Tensor,
    generator: torch.Generator | None = None,
    normalised: bool = False,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Sparse uniform features, shape ``[n_instances, batch, n_features]``.

    ``prob`` (``[n_instances]`` or ``[n_instances, n_features]``) is the chance a feature is active.
    """
    shape = (n_instances, batch, n_features)
    values = torch.rand(shape, generator=generator, device=device)
    p = prob.to(device)
    p = p[:, None, None] if p.ndim == 1 else p[:, None, :]
    active = torch.rand(shape, generator=generator, device=device) < p
    x = torch.where(active, values, torch.zeros((), device=device))
    return normalise(x) if normalised else x


def sample_k_hot(
    n_instances: int,
    batch: int,
    n_features: int,
    k: int = 1,
    generator: torch.Generator | None = None,
    values: Literal["uniform", "ones"] = "uniform",
    normalised: bool = False,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Exactly ``k`` active features per sample (one-hot for ``k=1``), ``[n_instances, batch, n]``.

    Active values are uniform in ``[0, 1)`` or exactly 1 (``values="ones"``).
    """
    if not 1 <= k <= n_features:
        raise ValueError(f"k must be in [1, n_features={n_features}], got {k}")
    shape = (n_instances, batch, n_features)
    # The k smallest of n iid uniforms are a uniformly random k-subset.
    ranks = torch.rand(shape, generator=generator, device=device).argsort(dim=-1).argsort(dim=-1)
    active = ranks < k
    if values == "ones":
        x = active.float()
    else:
        x = torch.where(active, torch.rand(shape, generator=generator, device=device), 0.0)
    return normalise(x) if normalised else x


def all_k_hot(n_features: int, k: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """Every k-hot vector (ones at ``k`` of ``n_features`` places), ``[C(n_features, k), n]``, in
    lexicographic order of the active indices (FeatureFinding's full-batch ``SyntheticKHot``)."""
    if not 1 <= k <= n_features:
        raise ValueError(f"k must be in [1, n_features={n_features}], got {k}")
    idx = torch.tensor(list(combinations(range(n_features), k)), dtype=torch.long, device=device)
    out = torch.zeros(idx.shape[0], n_features, device=device)
    return out.scatter_(1, idx, 1.0)


def apply_bool_op(a: Tensor, b: Tensor, op: BoolOp) -> Tensor:
    """Elementwise boolean ``op`` of two {0,1} tensors, returned as floats."""
    a_b, b_b = a > 0.5, b > 0.5
    table = {
        "and": a_b & b_b,
        "or": a_b | b_b,
        "xor": a_b ^ b_b,
        "nand": ~(a_b & b_b),
        "nor": ~(a_b | b_b),
    }
    if op not in table:
        raise ValueError(f"unknown boolean op {op!r}; use one of {sorted(table)}")
    return table[op].float()


def boolean_targets(
    bits: Tensor, pairs: Sequence[tuple[int, int]], ops: Sequence[BoolOp]
) -> Tensor:
    """Targets ``y_k = ops[k](bits[..., i_k], bits[..., j_k])``, shape ``[..., len(pairs)]``."""
    if len(pairs) != len(ops):
        raise ValueError(f"need one op per pair, got {len(pairs)} pairs and {len(ops)} ops")
    return torch.stack(
        [
            apply_bool_op(bits[..., i], bits[..., j], op)
            for (i, j), op in zip(pairs, ops, strict=True)
        ],
        dim=-1,
    )


def sample_bits(
    n_instances: int,
    batch: int,
    n_features: int,
    prob: Tensor,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Sparse binary inputs: each bit is 1 with probability ``prob`` (``[n_instances]``)."""
    shape = (n_instances, batch, n_features)
    return (
        torch.rand(shape, generator=generator, device=device) < prob.to(device)[:, None, None]
    ).float()
