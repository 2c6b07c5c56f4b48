"""Feature matching: the similarities against independent computations, and Hungarian matching
recovering a known permutation of a perturbed SAE, with dead features left unmatched."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from feature_lens.zoo import corpus_tokens, load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.dictionaries import load_dictionary
from projects.circuit_development.matching import (
    activation_correlation,
    decoder_cosine,
    feature_activations,
    hungarian_match,
    live_features,
    match_features,
)

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def zoo() -> tuple[Any, Any, torch.Tensor]:
    model = load_zoo_model()
    sae = load_dictionary(zoo_dictionary_dirs()[HOOK])
    return model, sae, corpus_tokens(48, split="test")


def _permuted_copy(sae: Any, perm: torch.Tensor, noise: float, seed: int = 0) -> Any:
    """A copy of `sae` whose feature j is the original feature perm[j], weights perturbed."""
    generator = torch.Generator().manual_seed(seed)
    other = copy.deepcopy(sae)
    with torch.no_grad():
        for name, param in other.named_parameters():
            if name == "W_enc":
                param.copy_(param[:, perm])
            elif name in ("W_dec", "b_enc"):
                param.copy_(param[perm])
            param.add_(noise * param.abs().mean() * torch.randn(param.shape, generator=generator))
    return other


@pytest.mark.filterwarnings("ignore:invalid value")
def test_similarities_equal_independent_computations() -> None:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 6, generator=generator), torch.randn(50, 4, generator=generator)
    b[:, 2] = 3.0  # a constant column correlates 0 with everything
    expected = np.corrcoef(a.T.numpy(), b.T.numpy())[:6, 6:]
    expected[:, 2] = 0.0  # numpy gives NaN there
    assert np.allclose(activation_correlation(a, b).numpy(), expected, atol=1e-5)
    u, v = torch.randn(5, 8, generator=generator), torch.randn(3, 8, generator=generator)
    cosine = torch.nn.functional.cosine_similarity(u[:, None], v[None], dim=-1)
    assert torch.allclose(decoder_cosine(u, v), cosine, atol=1e-6)


@pytest.mark.parametrize("kind", ["decoder", "activation"])
def test_hungarian_recovers_a_permutation_of_a_perturbed_sae(
    zoo: tuple[Any, Any, torch.Tensor], kind: str
) -> None:
    model, sae, tokens = zoo
    d_sae = int(sae.cfg.d_sae)
    perm = torch.randperm(d_sae, generator=torch.Generator().manual_seed(1))
    other = _permuted_copy(sae, perm, noise=0.03)
    acts_a = feature_activations(model, sae, HOOK, tokens)
    acts_b = feature_activations(model, other, HOOK, tokens)
    matching = match_features(
        kind,  # type: ignore[arg-type]
        W_dec_a=sae.W_dec,
        W_dec_b=other.W_dec,
        acts_a=acts_a,
        acts_b=acts_b,
    )
    live = live_features(acts_a, 8)
    assert live.sum() > 0.7 * d_sae
    # feature j of the copy is feature perm[j] of the original: A's i goes to B's inverse_perm[i]
    inverse = torch.argsort(perm)
    pairs = matching.pairs(threshold=-1.0)
    live_b = live_features(acts_b, 8)
    live_both = [i for i in range(d_sae) if live[i] and live_b[inverse[i]]]
    assert len(live_both) > 0.7 * d_sae
    assert all(pairs[i] == int(inverse[i]) for i in live_both)
    assert matching.matched_fraction(0.7) > 0.95
    # the same assignment on unrelated similarities (a fresh random SAE's decoder) matches little
    unrelated = hungarian_match(
        decoder_cosine(sae.W_dec, torch.randn_like(other.W_dec)), live, live_b
    )
    assert unrelated.matched_fraction(0.7) < 0.05


def test_dead_features_are_left_unmatched(zoo: tuple[Any, Any, torch.Tensor]) -> None:
    model, sae, tokens = zoo
    dead = [3, 17, 40]
    killed = copy.deepcopy(sae)
    with torch.no_grad():
        killed.W_enc[:, dead] = 0.0
        killed.b_enc[dead] = -1e4
    acts_a = feature_activations(model, killed, HOOK, tokens)
    acts_b = feature_activations(model, sae, HOOK, tokens)
    assert not live_features(acts_a, 1)[dead].any()
    matchings = {}
    for kind in ("decoder", "activation"):
        matching = matchings[kind] = match_features(
            kind,  # type: ignore[arg-type]
            W_dec_a=killed.W_dec,
            W_dec_b=sae.W_dec,
            acts_a=acts_a,
            acts_b=acts_b,
        )
        assert not set(dead) & set(matching.rows.tolist())
        live_a, live = live_features(acts_a, 8), live_features(acts_b, 8)
        assert matching.n_live_b == int(live.sum())
        # every other feature live in both is still assigned to itself
        pairs = matching.pairs(threshold=-1.0)
        assert all(pairs[i] == i for i in range(int(sae.cfg.d_sae)) if live[i] and live_a[i])
    # identical decoders: at 0.99 only the dead features' partners in B stay unmatched
    expected = (int(live.sum()) - int(live[dead].sum())) / int(live.sum())
    assert int(live[dead].sum()) > 0
    assert matchings["decoder"].matched_fraction(0.99) == pytest.approx(expected)
