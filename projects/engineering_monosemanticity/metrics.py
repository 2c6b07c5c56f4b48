"""Monosemanticity of hidden neurons, measured on single-feature inputs.

Feed each feature alone at value 1 (``x = E e_i``) and record every neuron's activation: a
(N features, k neurons) matrix of responses. A neuron is monosemantic when its largest response
exceeds ``threshold`` (0.999, as in the paper) times the sum of its responses over all features,
i.e. essentially one feature drives it. The original computed ``max / (1e-10 + sum) > 0.999``; for
non-negative responses (ReLU) that is the same test. We also require ``max > 0`` so that a dead
neuron (all responses zero) or a neuron with only negative responses (GeLU, SoLU) never counts.

The paper plots the count of monosemantic neurons divided by the number of *features* N
(1 means every feature has its own neuron); we report that and the count divided by k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from projects.engineering_monosemanticity.model import ToyModel

MONO_THRESHOLD = 0.999


@torch.no_grad()
def single_feature_activations(
    model: ToyModel, embedder: Float[Tensor, "m N"]
) -> Float[Tensor, "N k"]:
    """Hidden activations for each feature presented alone at value 1; row i is feature i."""
    return model.activations(embedder.T)


def monosemanticity_ratio(responses: Float[Tensor, "N k"]) -> Float[Tensor, " k"]:
    """Each neuron's largest response over its summed response, as in the original's plots."""
    return responses.max(dim=0).values / (1e-10 + responses.sum(dim=0))


def monosemantic_mask(
    responses: Float[Tensor, "N k"], threshold: float = MONO_THRESHOLD
) -> Bool[Tensor, " k"]:
    """True for neurons whose top response is positive and exceeds ``threshold`` x the sum."""
    top = responses.max(dim=0).values
    return (top > 0) & (top > threshold * responses.sum(dim=0))


@dataclass(frozen=True)
class MonoStats:
    """Monosemanticity summary of one model at one moment of training."""

    n_mono: int
    frac_of_neurons: float  # n_mono / k
    frac_of_features: float  # n_mono / N (the paper's "# mono neurons / # features")
    mean_bias: float


def mono_stats(model: ToyModel, embedder: Float[Tensor, "m N"]) -> MonoStats:
    """Count monosemantic neurons of ``model`` and summarise its hidden biases."""
    responses = single_feature_activations(model, embedder)
    n_mono = int(monosemantic_mask(responses).sum().item())
    n_features, k = responses.shape
    return MonoStats(
        n_mono=n_mono,
        frac_of_neurons=n_mono / k,
        frac_of_features=n_mono / n_features,
        mean_bias=float(model.encoder.bias.mean().item()),
    )
