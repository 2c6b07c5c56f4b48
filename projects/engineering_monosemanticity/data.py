"""Synthetic data: sparse feature vectors, their fixed random embedding, and the task targets.

A sample is a vector ``v`` of N features. Feature i is active with probability ``p_i`` and, when
active, takes a value uniform in [0, 1). The model sees ``x = E v`` with ``E`` a fixed (m, N)
embedding; the target depends on the task:

- ``autoencoder`` (the paper's "decoder"): target ``v``.
- ``re-projector``: target ``E' v``, with ``E'`` a second fixed random embedding (m, N), so the
  model must map one random projection of the features to another.
- ``abs``: two independent samples ``v1, v2`` drawn with ``eps / 2`` each (so the difference has
  about the same density as one sample), input ``E (v1 - v2)``, target ``|v1 - v2|``.

Feature probabilities (``sample_kind``):

- ``equal``: ``p_i = eps`` for every feature.
- ``power-law`` (the default power law, exactly the seed's ``sample_vectors_power_law``):
  ``p_i = min(1, N eps i^(-1.1) / sum_j j^(-1.1))`` for i = 1..N, computed in float32 as the seed
  does. The clipped mass is lost, so the expected number of active features is below ``N eps``
  when the head of the law is clipped (7.47 instead of 8 for N=512, eps=1/64).
- ``power-law-filled`` (water-filling variant, an option): ``p_i = min(1, c i^(-1.1))`` with ``c``
  chosen so that ``sum_i p_i = N eps`` exactly: the clipped mass is redistributed over the
  unclipped features, which keep the exact i^(-1.1) law.

Activity is drawn as ``U < p_i`` with ``U`` uniform in [0, 1) (the seed draws
``bernoulli(p_i)``: the same distribution, P(U < p) = p).

Embedding (as in the original ``make_random_embedder``): draw a Gaussian (N, m) matrix, take an
orthonormal basis of its column space (N, m, orthonormal columns), then rescale each row (one
feature's m-vector) to unit norm; ``E`` is the transpose.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from projects.engineering_monosemanticity.config import RunConfig

POWER_LAW_EXPONENT = 1.1


def make_embedder(N: int, m: int, generator: torch.Generator) -> Float[Tensor, "m N"]:
    """A fixed random embedding: orthonormalised Gaussian columns, unit-norm feature vectors.

    Args:
        N: number of features; m: embedding dimension (m <= N).
        generator: a CPU generator (the embedding is the same whatever device trains the model).

    Returns:
        ``E`` of shape (m, N); column i is feature i's unit-norm direction.
    """
    if m > N:
        raise ValueError(f"embedding dimension m={m} must not exceed the feature count N={N}")
    gaussian = torch.randn(N, m, generator=generator, dtype=torch.float64)
    basis, _ = torch.linalg.qr(gaussian)  # (N, m), orthonormal columns
    basis = basis / basis.norm(dim=1, keepdim=True)
    return basis.T.to(torch.float32).contiguous()


def feature_probabilities(N: int, eps: float, sample_kind: str) -> Float[Tensor, " N"]:
    """Per-feature activation probabilities for ``equal``, ``power-law`` or ``power-law-filled``.

    ``equal`` and ``power-law-filled`` sum to ``N * eps``; ``power-law`` (the seed's) sums to
    ``N * eps`` minus the mass its clipping at 1 removes.
    """
    if sample_kind == "equal":
        return torch.full((N,), float(eps), dtype=torch.float64)
    if sample_kind == "power-law":
        return seed_power_law_probabilities(N, eps)
    if sample_kind == "power-law-filled":
        return water_filled_power_law_probabilities(N, eps)
    raise ValueError(
        f"sample_kind={sample_kind!r} is not 'equal', 'power-law' or 'power-law-filled'"
    )


def seed_power_law_probabilities(N: int, eps: float) -> Float[Tensor, " N"]:
    """The seed's power law: normalise ``i^-1.1`` to sum ``N eps`` (float32), then clip at 1."""
    law = 1.0 / torch.arange(1, N + 1, dtype=torch.float32) ** POWER_LAW_EXPONENT
    # As in the seed, N (an integer tensor) times eps (float32), over the float32 sum.
    law = law * (torch.tensor(N) * torch.tensor(eps, dtype=torch.float32) / law.sum())
    return law.clamp(max=1.0).to(torch.float64)


def water_filled_power_law_probabilities(N: int, eps: float) -> Float[Tensor, " N"]:
    """``min(1, c i^-1.1)`` with ``c`` set so that the probabilities sum to ``N eps`` exactly."""
    weights = torch.arange(1, N + 1, dtype=torch.float64) ** -POWER_LAW_EXPONENT
    target = N * eps
    clipped = torch.zeros(N, dtype=torch.bool)
    # Water-filling: features whose probability would exceed 1 are pinned at 1 and the rest of
    # the mass is spread over the others in proportion to the power law. Terminates within N
    # rounds because each round pins at least one more feature or stops.
    for _ in range(N):
        free_mass = target - clipped.sum().item()
        probs = torch.where(clipped, 1.0, weights * free_mass / weights[~clipped].sum())
        newly = (probs > 1.0) & ~clipped
        if not newly.any():
            return probs
        clipped |= newly
    return torch.ones(N, dtype=torch.float64)


def sample_features(
    batch_size: int,
    probs: Float[Tensor, " N"],
    generator: torch.Generator,
) -> Float[Tensor, "batch N"]:
    """Sparse feature vectors: feature i active with probability ``probs[i]``, value U[0, 1)."""
    shape = (batch_size, probs.shape[0])
    values = torch.rand(shape, generator=generator, device=probs.device)
    active = torch.rand(shape, generator=generator, device=probs.device) < probs
    return values * active


class TaskData:
    """Draws (input, target) batches for one run's task, on the run's device."""

    def __init__(self, config: RunConfig, device: str | torch.device = "cpu") -> None:
        cpu = torch.Generator().manual_seed(config.seed)
        self.config = config
        self.device = torch.device(device)
        self.embedder = make_embedder(config.N, config.m, cpu).to(self.device)
        self.output_embedder = (
            make_embedder(config.N, config.m, cpu).to(self.device)
            if config.task == "re-projector"
            else None
        )
        eps = config.eps / 2 if config.task == "abs" else config.eps
        self.probs = feature_probabilities(config.N, eps, config.sample_kind).to(
            self.device, torch.float32
        )
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed + 1)

    def embed(self, v: Float[Tensor, "batch N"]) -> Float[Tensor, "batch m"]:
        """The model input for feature vectors ``v``."""
        return v @ self.embedder.T

    def batch(self, batch_size: int) -> tuple[Float[Tensor, "batch m"], Float[Tensor, "batch out"]]:
        """One batch ``(inputs, targets)`` for the configured task."""
        v = sample_features(batch_size, self.probs, self.generator)
        if self.config.task == "abs":
            v = v - sample_features(batch_size, self.probs, self.generator)
            return self.embed(v), v.abs()
        if self.output_embedder is not None:
            return self.embed(v), v @ self.output_embedder.T
        return self.embed(v), v
