"""Hessian of one instance's loss: against finite differences, and the hidden-rotation symmetry."""

import torch

from projects.toy_superposition.data import importance_schedule
from projects.toy_superposition.hessian import hessian_eigenvalues, loss_hessian
from projects.toy_superposition.models import ToyModel
from projects.toy_superposition.train import (
    FixedDataset,
    TrainConfig,
    instance_loss,
    sparse_sampler,
    train,
)


def test_hessian_matches_finite_differences_of_the_gradient() -> None:
    torch.set_default_dtype(torch.float64)
    try:
        model = ToyModel(3, 2, n_instances=2, seed=0)
        x = torch.rand(2, 64, 3)
        imp = importance_schedule(3)
        H = loss_hessian(model, x, x, imp, k=1)
        P = 2 * 3 + 3
        assert H.shape == (P, P)

        def grad_at(theta: torch.Tensor) -> torch.Tensor:
            W = theta[:6].reshape(1, 3, 2).requires_grad_(True)
            b = theta[6:].reshape(1, 3).requires_grad_(True)
            y = torch.relu(x[1:2] @ W @ W.transpose(1, 2) + b[:, None])
            (gW, gb) = torch.autograd.grad(instance_loss(y, x[1:2], imp).sum(), (W, b))
            return torch.cat([gW.flatten(), gb.flatten()])

        assert model.b_out is not None
        theta = torch.cat([model.W_in[1].detach().flatten(), model.b_out[1].detach().flatten()])
        eps = 1e-6
        fd = torch.stack(
            [
                (grad_at(theta + eps * e) - grad_at(theta - eps * e)) / (2 * eps)
                for e in torch.eye(P)
            ]
        )
        assert torch.allclose(H, fd, atol=1e-6)
    finally:
        torch.set_default_dtype(torch.float32)


def test_rotating_the_hidden_layer_is_a_flat_direction_at_a_minimum() -> None:
    # x' = ReLU(WᵀWx + b) is unchanged by W -> QW, so at a minimum the Hessian has a zero
    # eigenvalue along that rotation, while the other eigenvalues stay positive.
    model = ToyModel(4, 2, n_instances=1, seed=0)
    data = FixedDataset(sparse_sampler(1, 4, 0.0)(512, torch.Generator().manual_seed(0))[0])
    imp = importance_schedule(4, "geometric", 0.7)
    train(model, data, imp, TrainConfig(steps=1500, batch_size=512, lr=2e-2))
    eig = hessian_eigenvalues(model, data.x, data.x, imp)
    assert eig.abs().min() < 1e-3 * eig.max()
    assert eig.min() > -1e-3 * eig.max()
