"""Hessian of the loss of one instance with respect to all of its parameters.

A batched model stores instance ``k`` as slice ``[k]`` of every parameter. We cut those slices out,
flatten them into one vector ``θ``, and differentiate ``loss(θ)`` twice with ``torch.func`` on a
fixed batch. Eigenvalues near zero mark flat directions (symmetries such as the rotation of a
hidden layer); negative ones mark saddles, which training passes by during a phase change.
"""

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
) -> Tensor:
    """Hessian ``[P, P]`` of instance ``k``'s loss on the batch ``x[k]``, ``target[k]``.

    ``P`` is the number of parameters of one instance, in ``model.named_parameters()`` order.
    """
    params = instance_params(model, k)
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    theta = torch.cat([params[n].reshape(-1) for n in names])
    xk, tk = x[k : k + 1], target[k : k + 1]
    imp = importance if importance.ndim == 1 else importance[k : k + 1]

    def f(flat: Tensor) -> Tensor:
        chunks = torch.split(flat, sizes)
        p = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return instance_loss(functional_call(model, p, (xk,)), tk, imp, loss).sum()

    return hessian(f)(theta)


def hessian_eigenvalues(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    importance: Tensor,
    k: int = 0,
    loss: LossKind = "mse",
) -> Tensor:
    """Ascending eigenvalues ``[P]`` of :func:`loss_hessian`."""
    H = loss_hessian(model, x, target, importance, k, loss)
    return torch.linalg.eigvalsh(0.5 * (H + H.T))
