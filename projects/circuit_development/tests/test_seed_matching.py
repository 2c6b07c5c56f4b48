"""The seed's matching: cosine distance by hand, the "dead = -1" rules on constructed cases with
known answers, the thresholded fraction and the histograms by counting, and the permutation of a
real SAE recovered exactly."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch

from feature_lens.zoo import corpus_tokens, load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.dictionaries import load_dictionary
from projects.circuit_development.matching import feature_activations
from projects.circuit_development.seed_matching import (
    DEAD,
    SEED_HISTOGRAM_EDGES,
    activation_cosine_distance,
    decoder_pair_cosine,
    seed_match,
    similarity_histogram,
    sparsify,
)


def test_cosine_distance_equals_a_hand_computation() -> None:
    a = torch.tensor([[1.0, 0.0, 2.0], [2.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    b = torch.tensor([[2.0, 1.0], [4.0, 1.0], [0.0, 1.0]])
    got = activation_cosine_distance(a, b)
    for i in range(3):
        for j in range(2):
            x, y = a[:, i].tolist(), b[:, j].tolist()
            nx, ny = math.sqrt(sum(v * v for v in x)), math.sqrt(sum(v * v for v in y))
            dot = sum(p * q for p, q in zip(x, y, strict=True))
            expected = 1.0 if nx == 0 or ny == 0 else 1.0 - dot / (nx * ny)
            assert got[i, j] == pytest.approx(expected, abs=1e-12)
    # column 0 of A is a multiple of column 0 of B: distance 0; uncentred, unlike a correlation
    assert got[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert got[1, 0] == pytest.approx(1.0)  # the dead column
    assert got[0, 1] == pytest.approx(1 - 3 / (math.sqrt(5) * math.sqrt(3)))


def test_tiny_activations_count_as_zero() -> None:
    acts = torch.tensor([[5e-7, -2e-7, 2e-6], [0.0, 3.0, -4e-7]])
    assert sparsify(acts).tolist() == [[0.0, 0.0, acts[0, 2].item()], [0.0, 3.0, 0.0]]


def _constructed() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A: 6 features on 40 tokens, feature 1 dead. B: A's features permuted and rescaled, except
    that B's copy of A's feature 4 is dead (B index inverse[4] = 2; B's copy of the dead A1 is B3)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(40, 6, generator=generator) * (torch.rand(40, 6, generator=generator) < 0.5)
    a[:, 1] = 0.0
    perm = np.array([3, 0, 4, 1, 5, 2])  # B's feature j is A's feature perm[j]
    b = a[:, perm] * torch.tensor([2.0, 0.5, 1.0, 3.0, 1.5, 1.0])
    inverse = np.argsort(perm)
    b[:, inverse[4]] = 0.0
    return a, b, inverse


def test_seed_match_recovers_a_permutation_and_marks_dead_pairs() -> None:
    a, b, inverse = _constructed()
    matching = seed_match(a, b, dead_rule="partner")
    live = [0, 2, 3, 5]  # A's dead feature 1, and 4 whose partner died, are -1
    assert all(matching.partner[i] == inverse[i] for i in live)
    assert np.allclose(matching.distance[live], 0.0, atol=1e-9)
    assert matching.distance[1] == DEAD
    assert matching.distance[4] == DEAD
    assert matching.matched_fraction(0.1) == pytest.approx(4 / 6)  # over all features, dead too
    assert matching.pairs(0.3) == {i: int(inverse[i]) for i in live}


def test_same_index_rule_is_the_seeds_indexing() -> None:
    a, b, inverse = _constructed()
    seed = seed_match(a, b, dead_rule="same_index")
    # B's dead features are 2 and 3: the seed marks A's features with the *same indices*
    assert (int(inverse[4]), int(inverse[1])) == (2, 3)
    assert {i for i in range(6) if seed.distance[i] == DEAD} == {1, 2, 3}
    # A's feature 4, whose partner is dead, keeps distance 1; A2 and A3 (live, exact copies in B)
    # lose theirs
    assert seed.distance[4] == pytest.approx(1.0)
    assert seed.matched_fraction(0.1) == pytest.approx(2 / 6)


def test_fraction_and_histogram_equal_counting() -> None:
    generator = np.random.default_rng(0)
    distance = generator.uniform(0, 1.2, 300)
    distance[:20] = DEAD
    from projects.circuit_development.seed_matching import SeedMatching

    matching = SeedMatching(partner=np.arange(300), distance=distance)
    for t in (0.1, 0.3):
        count = sum(1 for d in distance if d != DEAD and d <= t)
        assert matching.matched_fraction(t) == count / 300
    similarity = np.where(distance >= 0, 1 - distance, np.nan)
    counts = similarity_histogram(similarity[~np.isnan(similarity)])
    edges = SEED_HISTOGRAM_EDGES
    for k in range(len(edges) - 1):
        last = k == len(edges) - 2
        expected = sum(
            1
            for s in similarity
            if not np.isnan(s) and edges[k] <= s and (s < edges[k + 1] or (last and s <= 1.0))
        )
        assert counts[k] == expected
    assert counts.sum() == sum(1 for s in similarity if 0 <= s <= 1)  # dead and < 0 fall outside


def test_decoder_pair_cosine_by_hand() -> None:
    u = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    v = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    got = decoder_pair_cosine(u, v, np.array([1, 0]))
    assert got.tolist() == pytest.approx([1.0, 1 / math.sqrt(2)])
    # a row against itself lands in the histogram's last bin, never above 1
    w = torch.randn(300, 7, generator=torch.Generator().manual_seed(0))
    same = decoder_pair_cosine(w, w, np.arange(300))
    assert (same <= 1.0).all()
    assert similarity_histogram(same)[-1] == 300


HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(scope="module")
def zoo() -> tuple[Any, Any, torch.Tensor]:
    return (
        load_zoo_model(),
        load_dictionary(zoo_dictionary_dirs()[HOOK]),
        corpus_tokens(16, split="test"),
    )


def test_permuted_real_sae_is_matched_exactly(zoo: tuple[Any, Any, torch.Tensor]) -> None:
    model, sae, tokens = zoo
    d_sae = int(sae.cfg.d_sae)
    perm = torch.randperm(d_sae, generator=torch.Generator().manual_seed(3))
    other = copy.deepcopy(sae)
    with torch.no_grad():
        other.W_enc.copy_(sae.W_enc[:, perm])
        other.b_enc.copy_(sae.b_enc[perm])
        other.W_dec.copy_(sae.W_dec[perm])
    acts_a = feature_activations(model, sae, HOOK, tokens)
    acts_b = feature_activations(model, other, HOOK, tokens)
    matching = seed_match(acts_a, acts_b)
    inverse = torch.argsort(perm).numpy()
    alive = (acts_a > 1e-6).any(0).numpy()
    assert alive.sum() > 0.5 * d_sae
    assert (matching.partner[alive] == inverse[alive]).all()
    assert np.allclose(matching.distance[alive], 0.0, atol=1e-6)
    assert (matching.distance[~alive] == DEAD).all()
    assert matching.matched_fraction(0.1) == pytest.approx(alive.mean())
