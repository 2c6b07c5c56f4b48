"""The data generators match their definitions (rates, supports, truth tables)."""

import itertools

import pytest
import torch

from projects.toy_superposition import data


def test_sparse_features_have_the_requested_density_and_uniform_values() -> None:
    gen = torch.Generator().manual_seed(0)
    sparsity = [0.0, 0.5, 0.9]
    x = data.sample_sparse(3, 20000, 10, data.feature_probability(sparsity), gen)
    active = x > 0
    n = active[0].numel()
    for k, s in enumerate(sparsity):
        rate = active[k].float().mean().item()
        # Binomial standard error is at most 0.5/sqrt(n); allow 5 of them.
        assert rate == pytest.approx(1 - s, abs=5 * 0.5 / n**0.5)
    vals = x[active]
    assert vals.min() >= 0
    assert vals.max() < 1
    assert vals.mean().item() == pytest.approx(0.5, abs=0.01)
    assert (vals**2).mean().item() == pytest.approx(1 / 3, abs=0.01)


def test_sparsity_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="sparsity"):
        data.feature_probability([0.5, 1.5])


def test_k_hot_has_exactly_k_active_features_chosen_uniformly() -> None:
    gen = torch.Generator().manual_seed(1)
    x = data.sample_k_hot(2, 6000, 6, k=2, generator=gen)
    assert ((x > 0).sum(-1) == 2).all()
    freq = (x > 0).float().mean(dim=(0, 1))
    assert torch.allclose(freq, torch.full((6,), 2 / 6), atol=0.02)
    ones = data.sample_k_hot(1, 10, 6, k=1, generator=gen, values="ones")
    assert torch.equal(ones.sum(-1), torch.ones(1, 10))


def test_normalised_inputs_have_unit_norm_and_zero_stays_zero() -> None:
    gen = torch.Generator().manual_seed(2)
    x = data.sample_sparse(1, 500, 4, torch.tensor([0.5]), gen, normalised=True)
    norms = x.norm(dim=-1)
    nonzero = norms > 0
    assert torch.allclose(norms[nonzero], torch.ones_like(norms[nonzero]), atol=1e-6)
    assert (~nonzero).any()  # with 4 features at S=0.5, ~6% of samples are all zero


def test_importance_schedules() -> None:
    assert torch.allclose(
        data.importance_schedule(4, "geometric", 0.7), torch.tensor([1, 0.7, 0.49, 0.343])
    )
    assert torch.equal(data.importance_schedule(3, "uniform"), torch.ones(3))


def test_boolean_targets_follow_the_truth_tables() -> None:
    python_ops = {
        "and": lambda a, b: a and b,
        "or": lambda a, b: a or b,
        "xor": lambda a, b: a != b,
        "nand": lambda a, b: not (a and b),
        "nor": lambda a, b: not (a or b),
    }
    rows = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))
    pairs = [(0, 1), (1, 2), (0, 2), (2, 0), (1, 1)]
    ops = ["and", "or", "xor", "nand", "nor"]
    y = data.boolean_targets(rows, pairs, ops)
    for r, row in enumerate(rows.tolist()):
        for c, ((i, j), op) in enumerate(zip(pairs, ops, strict=True)):
            assert y[r, c].item() == float(python_ops[op](bool(row[i]), bool(row[j])))
