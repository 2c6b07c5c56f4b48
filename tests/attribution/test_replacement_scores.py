"""circuit-tracer's targets and graph scores on hand-made cases with closed forms (the comparison
with circuit-tracer itself is in tests/test_circuit_tracer_equality.py)."""

from __future__ import annotations

import pytest
import torch

from feature_lens.attribution.replacement_scores import graph_scores, node_influence, salient_logits
from feature_lens.errors import InputError


def test_scores_of_a_small_graph_by_hand() -> None:
    # token -> feature (2); feature -> logit (3), error -> logit (1). Nodes: f, e, t, logit.
    adjacency = torch.zeros(4, 4, dtype=torch.float64)
    adjacency[0, 2] = 2.0
    adjacency[3, 0], adjacency[3, 1] = 3.0, -1.0
    weights = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    replacement, completeness = graph_scores(
        adjacency, ["feature", "error", "token", "logit"], weights
    )
    # Influence: f 0.75, e 0.25, t 0.75 (through f). Replacement: 0.75 / (0.75 + 0.25).
    assert replacement == pytest.approx(0.75)
    # Non-error shares: logit 0.75, others 1; weights I + w: logit 1, f 0.75, e 0.25, t 0.75.
    assert completeness == pytest.approx((0.75 + 0.75 + 0.25 + 0.75) / 2.75)


def test_influence_equals_the_power_series() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 9
    adjacency = torch.randn(n, n, generator=generator, dtype=torch.float64).tril(-1)
    weights = torch.rand(n, generator=generator, dtype=torch.float64)
    normalised = adjacency.abs() / adjacency.abs().sum(1, keepdim=True).clamp_min(1e-300)
    normalised[0] = 0
    term, series = weights @ normalised, torch.zeros(n, dtype=torch.float64)
    for _ in range(n):
        series += term
        term = term @ normalised
    torch.testing.assert_close(node_influence(adjacency, weights), series)


def test_salient_logits_stop_at_the_cumulative_probability() -> None:
    probs = torch.tensor([0.05, 0.5, 0.3, 0.1, 0.05], dtype=torch.float64)
    unembed = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = salient_logits(probs.log(), unembed, desired_prob=0.85)
    assert targets.tokens.tolist() == [1, 2, 3]  # 0.5, 0.8, 0.9 >= 0.85
    torch.testing.assert_close(targets.probabilities, probs[[1, 2, 3]])
    torch.testing.assert_close(targets.vectors[0], unembed[:, 1] - unembed.mean(1))
    assert salient_logits(probs.log(), unembed, max_n=2).tokens.tolist() == [1, 2]
    with pytest.raises(InputError, match="desired_prob"):
        salient_logits(probs.log(), unembed, desired_prob=0)
