"""The paper's claims, checked on small trained models (seeds fixed, a few seconds in all)."""

import torch

from projects.toy_superposition import analysis as A
from projects.toy_superposition.data import importance_schedule
from projects.toy_superposition.models import ToyModel
from projects.toy_superposition.train import TrainConfig, sparse_sampler, train

FAST = TrainConfig(steps=1000, batch_size=256, lr=2e-2)


def _trained(
    n: int, m: int, sparsity: list[float], importance: torch.Tensor, act: str, seed: int = 0
) -> ToyModel:
    torch.manual_seed(seed)
    model = ToyModel(n, m, len(sparsity), output_act=act, seed=seed)  # type: ignore[arg-type]
    train(model, sparse_sampler(len(sparsity), n, sparsity), importance, FAST)
    return model


def test_dense_relu_model_keeps_only_the_m_most_important_features() -> None:
    model = _trained(6, 2, [0.0, 0.0], importance_schedule(6, "geometric", 0.7), "relu")
    norms = A.feature_norms(model.W_in.detach())
    assert torch.allclose(norms[:, :2], torch.ones(2, 2), atol=0.05)
    assert (norms[:, 2:] < 0.1).all()
    # The kept features are orthogonal: no superposition when features are dense.
    W = model.W_in.detach()[:, :2]
    assert (W[:, 0] * W[:, 1]).sum(-1).abs().max() < 0.05


def test_linear_model_never_superposes_but_relu_model_does() -> None:
    imp = importance_schedule(6, "geometric", 0.9)
    sparsity = [0.9, 0.97]
    linear = _trained(6, 2, sparsity, imp, "linear").W_in.detach()
    relu = _trained(6, 2, sparsity, imp, "relu").W_in.detach()
    # Linear: the optimum is PCA — WᵀW projects onto the 2 most important features.
    assert A.n_represented(linear).tolist() == [2, 2]
    assert A.represented(linear)[:, :2].all()
    gram = linear[:, :2] @ linear[:, :2].transpose(1, 2)
    assert torch.allclose(gram, torch.eye(2).expand(2, 2, 2), atol=0.06)
    assert (A.frobenius_sq(linear) < 2.1).all()
    # ReLU at the same sparsities packs more than m features.
    assert (A.n_represented(relu) >= 5).all()
    assert (A.frobenius_sq(relu) > 4.0).all()


def test_pentagon_emerges_for_five_features_in_two_dimensions_when_sparse() -> None:
    model = ToyModel(5, 2, n_instances=2, seed=1)
    cfg = TrainConfig(steps=1200, batch_size=256, lr=2e-2, seed=1)
    train(model, sparse_sampler(2, 5, 0.9), importance_schedule(5, "uniform"), cfg)
    for W in model.W_in.detach():
        assert A.n_represented(W).item() == 5
        gaps = A.angular_gaps_2d(W)
        assert torch.allclose(gaps, torch.full((5,), 72.0), atol=6.0), gaps
        D = A.feature_dimensionality(W)
        assert torch.allclose(D, torch.full((5,), 0.4), atol=0.05), D
    # Dense, the same model keeps an orthogonal pair instead.
    dense = _trained(5, 2, [0.0], importance_schedule(5, "geometric", 0.9), "relu")
    assert A.n_represented(dense.W_in.detach()[0]).item() == 2
