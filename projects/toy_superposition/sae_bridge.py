"""The bridge to the library: an SAE trained on a toy model's hidden layer finds its features.

A toy model stores ``n`` sparse features along known directions ``W_i`` in ``m < n`` dimensions,
so its hidden layer ``h = Σ_i x_i W_i`` is exactly the kind of activation an SAE is meant to
decompose, with the ground truth known. We train ``feature_lens.training.train_sae`` (SAE-Lens's
own trainer) on ``h`` and score it:

- recovery: for each represented toy feature, the highest cosine similarity between ``W_i`` and any
  SAE decoder row; the mean over features is the *mean max cosine similarity* (MMCS);
- explained variance ``1 - E‖h - ĥ‖² / E‖h - mean(h)‖²`` and the mean L0 of the SAE code.

With too weak a sparsity penalty the SAE reconstructs ``h`` almost perfectly with a dense code
whose decoder rows are mixtures of features: high explained variance, low recovery.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from projects.toy_superposition import analysis as A
from projects.toy_superposition.data import feature_probability, importance_schedule, sample_sparse
from projects.toy_superposition.models import ToyModel
from projects.toy_superposition.train import TrainConfig, sparse_sampler, train


def max_cosine_similarity(true_dirs: Tensor, learned: Tensor) -> Tensor:
    """For each row of ``true_dirs [n, m]``, the max cosine with any row of ``learned [d, m]``."""
    t = true_dirs / true_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    u = learned / learned.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (t @ u.T).max(dim=-1).values


@dataclass
class ToySetup:
    """A trained toy model's feature directions and a sample of its hidden activations."""

    W: Tensor  # [n_features, n_hidden], one instance
    hidden: Tensor  # [n_samples, n_hidden]
    sparsity: float


def toy_setup(
    n_features: int = 8,
    n_hidden: int = 4,
    sparsity: float = 0.9,
    n_samples: int = 32768,
    steps: int = 2000,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> ToySetup:
    """Train a tied ReLU toy model (uniform importance) and sample its hidden layer."""
    model = ToyModel(n_features, n_hidden, n_instances=1, seed=seed, device=device)
    cfg = TrainConfig(steps=steps, batch_size=512, lr=1e-2, seed=seed)
    train(
        model,
        sparse_sampler(1, n_features, sparsity, device=device),
        importance_schedule(n_features, "uniform"),
        cfg,
    )
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    x = sample_sparse(
        1, n_samples, n_features, feature_probability(sparsity, device), gen, device=device
    )
    with torch.no_grad():
        h = model.hidden(x)[0]
    return ToySetup(model.W_in.detach()[0].cpu(), h.cpu(), sparsity)


@dataclass
class SAEScore:
    """How well one SAE recovers the toy model's features."""

    l1_coefficient: float
    mmcs: float
    explained_variance: float
    l0: float
    per_feature: list[float]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for tables and JSON)."""
        return self.__dict__.copy()


def score_sae(sae: Any, setup: ToySetup, l1_coefficient: float) -> SAEScore:
    """Recovery, explained variance and L0 of an SAE-Lens SAE on ``setup``'s activations."""
    h = setup.hidden
    with torch.no_grad():
        codes = sae.encode(h)
        recon = sae.decode(codes)
        W_dec = sae.W_dec.detach().cpu()
    ev = 1 - float(((h - recon) ** 2).sum() / ((h - h.mean(0)) ** 2).sum())
    rep = A.represented(setup.W)
    mcs = max_cosine_similarity(setup.W[rep], W_dec)
    return SAEScore(
        l1_coefficient,
        float(mcs.mean()),
        ev,
        float((codes > 0).float().sum(-1).mean()),
        mcs.tolist(),
    )


def random_baseline_mmcs(setup: ToySetup, d_sae: int, seed: int = 0) -> float:
    """MMCS of a decoder of ``d_sae`` random directions: the chance level of recovery."""
    gen = torch.Generator().manual_seed(seed)
    rand = torch.randn(d_sae, setup.W.shape[1], generator=gen)
    return float(max_cosine_similarity(setup.W[A.represented(setup.W)], rand).mean())


def sweep_l1(
    setup: ToySetup,
    l1_coefficients: Sequence[float],
    d_sae: int = 16,
    total_samples: int = 200_000,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[SAEScore]:
    """Train one standard (ReLU + L1) SAE per coefficient with the library's trainer; score each."""
    from feature_lens.training import train_sae  # heavy import (SAE-Lens); only when needed

    scores = []
    for l1 in l1_coefficients:
        sae = train_sae(
            setup.hidden,
            d_sae=d_sae,
            architecture="standard",
            l1_coefficient=l1,
            total_samples=total_samples,
            batch_size=256,
            lr=lr,
            seed=seed,
            device=device,
            hook_name="toy.hidden",
        )
        scores.append(score_sae(sae, setup, l1))
    return scores
