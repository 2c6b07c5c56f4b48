"""The monosemanticity metric on hand-built networks with known answers."""

import torch
from torch import nn

from projects.engineering_monosemanticity.metrics import (
    mono_stats,
    monosemantic_mask,
    monosemanticity_ratio,
    single_feature_activations,
)
from projects.engineering_monosemanticity.model import ToyModel


def _hand_built(weights: list[list[float]], biases: list[float], act: str = "ReLU") -> ToyModel:
    """A model whose encoder rows are ``weights`` (one per neuron) over m = N inputs."""
    w = torch.tensor(weights)
    k, m = w.shape
    model = ToyModel(m, k, m, act)
    with torch.no_grad():
        model.encoder.weight.copy_(w)
        model.encoder.bias.copy_(torch.tensor(biases))
    return model


def test_hand_built_network_known_mono_neurons() -> None:
    identity = torch.eye(4)  # feature i is input direction i
    model = _hand_built(
        [
            [1.0, 0.0, 0.0, 0.0],  # only feature 0: monosemantic
            [0.0, 1.0, 1.0, 0.0],  # features 1 and 2 equally: polysemantic
            [0.0, 0.0, 0.0, 0.0],  # dead: never monosemantic
            [1.0, 0.0005, 0.0, 0.0],  # 1 / 1.0005 = 0.9995 > 0.999: monosemantic
            [1.0, 0.002, 0.0, 0.0],  # 1 / 1.002 = 0.998 < 0.999: polysemantic
            [2.0, 2.0, 2.0, 2.0],  # bias -2 kills every single-feature response: dead
            [-1.0, -1.0, -1.0, 3.0],  # ReLU removes negative responses: only feature 3
        ],
        [0.0, 0.0, -1.0, 0.0, 0.0, -2.0, 0.0],
    )
    responses = single_feature_activations(model, identity)
    assert responses.shape == (4, 7)
    mask = monosemantic_mask(responses)
    assert mask.tolist() == [True, False, False, True, False, False, True]
    ratio = monosemanticity_ratio(responses)
    assert torch.allclose(ratio[:2], torch.tensor([1.0, 0.5]), atol=1e-6)
    stats = mono_stats(model, identity)
    assert stats.n_mono == 3
    assert stats.frac_of_neurons == 3 / 7
    assert stats.frac_of_features == 3 / 4


def test_positive_bias_makes_a_neuron_polysemantic() -> None:
    # A positive bias adds the same response to every feature, so no feature dominates.
    model = _hand_built([[1.0, 0.0, 0.0]], [0.1])
    assert not monosemantic_mask(single_feature_activations(model, torch.eye(3))).any()
    model = _hand_built([[1.0, 0.0, 0.0]], [-0.1])
    assert monosemantic_mask(single_feature_activations(model, torch.eye(3))).all()


def test_gelu_neuron_with_only_negative_responses_is_not_mono() -> None:
    model = _hand_built([[-3.0, -3.0, -3.0], [3.0, -3.0, -3.0]], [0.0, 0.0], act="GeLU")
    mask = monosemantic_mask(single_feature_activations(model, torch.eye(3)))
    # Neuron 1: GeLU(3) ~ 3 dominates the sum 3 - 2 * 0.004 of small negative responses.
    assert mask.tolist() == [False, True]


def test_mask_matches_a_brute_force_loop() -> None:
    g = torch.Generator().manual_seed(0)
    responses = torch.relu(torch.randn(20, 50, generator=g))
    responses[:, :10] = 0.0
    responses[3, :10] = torch.rand(10, generator=g)  # ten one-feature neurons
    expected = []
    for j in range(50):
        col = [float(responses[i, j]) for i in range(20)]
        expected.append(max(col) > 0 and max(col) > 0.999 * sum(col))
    assert monosemantic_mask(responses).tolist() == expected
    assert sum(expected) >= 10


def test_single_feature_activations_use_the_embedding() -> None:
    # With a rotated embedding, a neuron aligned with feature 2's direction is mono for feature 2.
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(3)))
    model = ToyModel(3, 1, 3)
    with torch.no_grad():
        model.encoder.weight.copy_(q[:, 2:].T)
        model.encoder.bias.zero_()
    responses = single_feature_activations(model, q)
    assert torch.allclose(responses[:, 0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-5)
    assert isinstance(model.act, nn.ReLU)
