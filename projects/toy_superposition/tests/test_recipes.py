"""The seed-003 recipe pieces: its inputs, warm starts, grouping of recipes, the ablation."""

import numpy as np
import pytest
import torch

from projects.toy_superposition import recipes as R


def test_seed_inputs_match_an_independent_numpy_computation() -> None:
    s = torch.tensor([0.0, 0.7, 0.99])
    x = R.sample_seed003(3, 500, 20, s, torch.Generator().manual_seed(5))
    u = torch.rand((3, 500, 20), generator=torch.Generator().manual_seed(5)).double().numpy()
    keep = u <= (1 - s.double().numpy())[:, None, None]
    raw = np.where(keep, u, 0.0)
    norm = np.linalg.norm(raw, axis=-1, keepdims=True)
    expect = np.divide(raw, norm, out=np.zeros_like(raw), where=norm > 0)
    assert np.allclose(x.numpy(), expect, atol=1e-6)
    # every sample is on the unit sphere or zero; active values before scaling are at most 1 - S
    n = x.norm(dim=-1)
    assert torch.all(((n - 1).abs() < 1e-5) | (n == 0))
    assert float((x[1] > 0).float().mean()) == pytest.approx(0.3, abs=0.02)


def test_mixed_sampler_gives_each_instance_its_own_style() -> None:
    sample = R.recipe_sampler(["seed", "project"], 10, [0.5, 0.5])
    x, y = sample(400, torch.Generator().manual_seed(0))
    assert x is y
    nz = x[0].norm(dim=-1) > 0
    assert torch.allclose(x[0].norm(dim=-1)[nz], torch.ones(int(nz.sum())))
    assert float(x[1].norm(dim=-1).max()) > 1.2  # unnormalised U[0,1) features
    with pytest.raises(ValueError, match="unknown data kind"):
        R.recipe_sampler(["nope"], 10, [0.5])  # type: ignore[list-item]


def test_ingredients_swap_exactly_their_fields() -> None:
    r = R.SEED003.with_ingredient("optimizer", R.PROJECT)
    assert (r.optimizer, r.lr, r.weight_decay) == ("adam", 3e-3, 0.0)
    assert (r.data, r.importance_base, r.warm_start) == ("seed", 0.7, True)
    assert [x.name for x in R.ablation(R.PROJECT, R.SEED003)][1:] == [
        f"project + seed's {g}" for g in R.INGREDIENTS
    ]
    assert len(R.both_ways()) == 10
    with pytest.raises(ValueError, match="unknown ingredient"):
        R.PROJECT.with_ingredient("batch", R.SEED003)


def test_warm_start_snapshots_each_stage_and_stage_one_is_a_plain_run() -> None:
    rec = R.scaled(R.SEED003, 30, 64)
    two = R.run_recipe(rec, False, n_features=6, n_hidden=2, sparsities=[0.0, 0.9])
    one = R.run_recipe(rec, False, n_features=6, n_hidden=2, sparsities=[0.0])
    assert torch.equal(two.W_in[0], one.W_in[0])  # same init, same stage-0 data
    assert not torch.equal(two.W_in[0], two.W_in[1])  # the second stage moved on from there
    diag = torch.einsum("snm,smn->sn", two.W_in[:, 0], two.W_out[:, 0])
    assert torch.equal(two.n_represented(0.5)[:, 0], (diag > 0.5).sum(-1))


def test_recipes_train_together_only_when_they_share_the_optimiser() -> None:
    recs = [R.scaled(r, 20, 32) for r in R.both_ways()]
    groups = R.group_recipes(recs)
    assert sorted(len(g) for g in groups) == [2, 2, 3, 3]
    with pytest.raises(ValueError, match="must share"):
        R.run_recipes([recs[0], recs[-1]], True)
    out = R.run_all(recs[:2], True, n_features=6, n_hidden=2, sparsities=[0.0, 0.9], n_seeds=2)
    run = out["project"]
    assert run.W_in.shape == (2, 2, 6, 2)
    assert torch.allclose(run.W_out, run.W_in.transpose(-1, -2))  # tied
