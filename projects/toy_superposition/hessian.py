"""Hessian of the loss of one instance with respect to all of its parameters.

A batched model stores instance ``k`` as slice ``[k]`` of every parameter. We cut those slices out,
flatten them into one vector ``θ``, and differentiate ``loss(θ)`` twice with ``torch.func`` on a
fixed batch. Eigenvalues near zero mark flat directions (symmetries such as the rotation of a
hidden layer); negative ones mark saddles, which training passes by during a phase change.

``dtype=torch.float64`` computes the Hessian in double precision (FeatureFinding works in float64:
eigenvalues of order 1e-7 are noise in float32). :func:`eigenvalue_histograms` and
:func:`eigenvalues_in_range` summarise eigenvalues over training, as that repository's histogram
slider and range counts do.
"""

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, hessian

from projects.toy_superposition.train import LossKind, instance_loss


def instance_params(model: nn.Module, k: int) -> dict[str, Tensor]:
    """Instance ``k``'s parameters, each keeping a leading instance axis of size 1."""
    return {name: p.detach()[k : k + 1].clone() for name, p in model.named_parameters()}


def loss_hessian(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    importance: Tensor,
    k: int = 0,
    loss: LossKind = "mse",
    dtype: torch.dtype | None = None,
    power: float = 2.0,
) -> Tensor:
    """Hessian ``[P, P]`` of instance ``k``'s loss on the batch ``x[k]``, ``target[k]``.

    ``P`` is the number of parameters of one instance, in ``model.named_parameters()`` order.
    Copy-tied models count their shared weights once per parameter, like FeatureFinding.
    ``dtype`` casts parameters and data (e.g. ``torch.float64``).
    """
    params = instance_params(model, k)
    if dtype is not None:
        params = {n: p.to(dtype) for n, p in params.items()}
        x, target, importance = x.to(dtype), target.to(dtype), importance.to(dtype)
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    theta = torch.cat([params[n].reshape(-1) for n in names])
    xk, tk = x[k : k + 1], target[k : k + 1]
    imp = importance if importance.ndim == 1 else importance[k : k + 1]

    def f(flat: Tensor) -> Tensor:
        chunks = torch.split(flat, sizes)
        p = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return instance_loss(functional_call(model, p, (xk,)), tk, imp, loss, power).sum()

    return hessian(f)(theta)


def hessian_eigenvalues(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    importance: Tensor,
    k: int = 0,
    loss: LossKind = "mse",
    dtype: torch.dtype | None = None,
    power: float = 2.0,
) -> Tensor:
    """Ascending eigenvalues ``[P]`` of :func:`loss_hessian`."""
    H = loss_hessian(model, x, target, importance, k, loss, dtype, power)
    return torch.linalg.eigvalsh(0.5 * (H + H.T))


def eigenvalue_histograms(
    eigenvalues: dict[int, Tensor], bins: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Histograms of the eigenvalues at each step on *shared* bin edges (the range of all steps),
    so frames of a slider compare: returns ``edges [bins + 1]`` and ``counts [n_steps, bins]``
    (steps in the dict's order; the last bin includes its right edge)."""
    if not eigenvalues:
        raise ValueError("no eigenvalues given: pass {step: eigenvalues}")
    allv = torch.cat([v.reshape(-1).double().cpu() for v in eigenvalues.values()]).numpy()
    edges = np.histogram_bin_edges(allv, bins=bins)
    counts = np.stack(
        [np.histogram(v.double().cpu().numpy(), bins=edges)[0] for v in eigenvalues.values()]
    )
    return edges, counts


def eigenvalues_in_range(
    eigenvalues: dict[int, Tensor], lo: float = -float("inf"), hi: float = float("inf")
) -> dict[int, int]:
    """How many eigenvalues lie in ``[lo, hi]`` at each step."""
    return {step: int(((v >= lo) & (v <= hi)).sum()) for step, v in eigenvalues.items()}
