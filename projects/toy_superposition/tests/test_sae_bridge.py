"""The library's SAE trainer recovers a toy model's features — unless its L1 penalty is too weak."""

import pytest
import torch

from projects.toy_superposition import sae_bridge as B


def test_max_cosine_similarity_ignores_scale_order_and_sign_of_extra_rows() -> None:
    true = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    learned = torch.tensor([[0.0, -5.0], [3.0, 3.0], [0.0, 0.5]])
    mcs = B.max_cosine_similarity(true, learned)
    assert mcs.tolist() == pytest.approx([2**-0.5, 1.0])


def test_sae_recovers_toy_features_and_weak_l1_does_not() -> None:
    pytest.importorskip("sae_lens")
    setup = B.toy_setup(8, 4, sparsity=0.9, steps=1000, n_samples=16384, seed=0)
    assert int((setup.W.norm(dim=-1) > 0.5).sum()) == 8  # all 8 features stored in 4 dimensions
    weak, good = B.sweep_l1(setup, [3e-4, 0.3], d_sae=16, total_samples=200_000)
    chance = sum(B.random_baseline_mmcs(setup, 16, seed) for seed in range(20)) / 20
    # A good penalty: every toy feature has a decoder row pointing along it.
    assert good.mmcs > 0.97
    assert good.explained_variance > 0.85
    # Too weak a penalty: near-perfect reconstruction with a dense code, recovery near chance.
    assert weak.explained_variance > 0.98
    assert weak.l0 > 4 * good.l0
    assert weak.mmcs < 0.9
    assert weak.mmcs < chance + 0.08
