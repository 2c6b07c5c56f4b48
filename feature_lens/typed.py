# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
"""Typed entry points to third-party functions whose stubs leave types unknown.

pyright's `reportUnknown*` checks run on the whole package. A few functions of torch, numpy and
safetensors are typed with `Unknown` parts (`Tensor.tolist() -> list[Unknown]`,
`Tensor.norm(...) -> Unknown | Tensor`, `load_file(filename: str | PathLike[Unknown])`), so every
call would be flagged. The package calls them through this module instead: each function here is
the same call with an exact type, and this file is the one place that turns those checks off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from safetensors import torch as safetensors_torch
from torch import Tensor


def _items(values: Tensor) -> list[Any]:
    return cast("list[Any]", values.tolist())


def int_list(values: Tensor) -> list[int]:
    """A 1-D integer tensor as a list of ints."""
    return [int(v) for v in _items(values)]


def float_list(values: Tensor) -> list[float]:
    """A 1-D float tensor as a list of floats."""
    return [float(v) for v in _items(values)]


def bool_list(values: Tensor) -> list[bool]:
    """A 1-D boolean tensor as a list of bools."""
    return [bool(v) for v in _items(values)]


def float_rows(values: Tensor) -> list[list[float]]:
    """A 2-D float tensor as a list of rows of floats."""
    return [[float(v) for v in row] for row in cast("list[list[Any]]", values.tolist())]


def vector_norm(values: Tensor, dim: int = -1, *, keepdim: bool = False) -> Tensor:
    """The Euclidean norm of `values` along `dim` (`torch.linalg.vector_norm`)."""
    norm: Any = torch.linalg.vector_norm
    return cast(Tensor, norm(values, dim=dim, keepdim=keepdim))


def manual_seed(seed: int) -> None:
    """Seed torch's global generator (`torch.manual_seed`)."""
    torch.manual_seed(seed)


def load_file(path: Path | str, device: str = "cpu") -> dict[str, Tensor]:
    """Every tensor of the safetensors file at `path` (memory-mapped), on `device`."""
    loader: Any = safetensors_torch.load_file
    return cast("dict[str, Tensor]", dict(loader(str(path), device=device)))


def save_file(
    tensors: dict[str, Tensor], path: Path | str, metadata: dict[str, str] | None = None
) -> None:
    """Write `tensors` (contiguous) to a safetensors file at `path`."""
    saver: Any = safetensors_torch.save_file
    saver(tensors, str(path), metadata=metadata)


def unique_inverse(values: Tensor) -> tuple[Tensor, Tensor]:
    """The sorted unique values of `values` and, for each element, its index among them."""
    keys, inverse = torch.unique(values, return_inverse=True)
    return keys, inverse


def sparse_coo(indices: Tensor, values: Tensor, size: tuple[int, ...]) -> Tensor:
    """A coalesced sparse COO tensor from sorted, duplicate-free `indices` (not re-checked)."""
    return torch.sparse_coo_tensor(indices, values, size, is_coalesced=True, check_invariants=False)


def int_rows(values: Tensor) -> list[list[int]]:
    """A 2-D integer tensor as a list of rows of ints."""
    return [[int(v) for v in row] for row in cast("list[list[Any]]", values.tolist())]


def unique_values(values: Tensor) -> Tensor:
    """The sorted unique values of `values`."""
    return torch.unique(values)


def solve(matrix: Tensor, rhs: Tensor) -> Tensor:
    """The solution `x` of `matrix @ x = rhs` (`torch.linalg.solve`)."""
    return torch.linalg.solve(matrix, rhs)


def bool_rows(values: Tensor) -> list[list[bool]]:
    """A 2-D boolean tensor as a list of rows of bools."""
    return [[bool(v) for v in row] for row in cast("list[list[Any]]", values.tolist())]


def sparse_coo_unchecked(indices: Tensor, values: Tensor, size: tuple[int, ...]) -> Tensor:
    """A sparse COO tensor from `indices` (duplicates allowed; invariants not checked)."""
    return torch.sparse_coo_tensor(indices, values, size, check_invariants=False)


def sparse_mm(sparse: Tensor, dense: Tensor) -> Tensor:
    """`sparse @ dense` for a sparse COO matrix (`torch.sparse.mm`)."""
    return torch.sparse.mm(sparse, dense)
