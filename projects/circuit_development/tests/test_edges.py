"""Edge tracking: a constructed pair of circuits with a hand-computed answer, and a real circuit
whose SAEs are permuted, matched back by the seed's matching, and found wired identically."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from feature_lens.attribution import LogitDiff, attribute
from feature_lens.lens import Lens
from feature_lens.zoo import corpus_tokens, load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.dictionaries import load_dictionary
from projects.circuit_development.circuits import task_prompt_set
from projects.circuit_development.edges import (
    Edge,
    NodeKey,
    edge_persistence,
    graph_edges,
    map_edges,
)
from projects.circuit_development.matching import feature_activations
from projects.circuit_development.seed_matching import seed_match


def f(site: str, index: int) -> NodeKey:
    return ("feature", site, None, index)


METRIC: NodeKey = ("logit", "metric", None, None)


def _constructed() -> tuple[dict[Edge, float], dict[Edge, float], dict[str, dict[int, int]]]:
    later = {
        (f("A", 0), f("B", 0)): 3.0,
        (f("A", 1), f("B", 0)): -2.0,
        (f("A", 2), f("B", 1)): 1.0,
        (f("B", 0), METRIC): 4.0,
        (f("B", 1), METRIC): 0.5,
    }
    earlier = {
        (f("A", 10), f("B", 20)): 6.0,
        (f("A", 11), f("B", 20)): 4.0,  # same wire, opposite sign
        (f("A", 12), f("B", 21)): 5.0,  # A12 has no partner: dropped
        (f("B", 20), METRIC): 8.0,
        (f("B", 21), METRIC): 1.0,
    }
    matches = {"A": {10: 0, 11: 1}, "B": {20: 0, 21: 1}}
    return earlier, later, matches


def test_mapping_renames_features_and_drops_unmatched_ones() -> None:
    earlier, _, matches = _constructed()
    assert map_edges(earlier, matches) == {
        (f("A", 0), f("B", 0)): 6.0,
        (f("A", 1), f("B", 0)): 4.0,
        (f("B", 0), METRIC): 8.0,
        (f("B", 1), METRIC): 1.0,
    }


def test_persistence_equals_a_hand_computation() -> None:
    earlier, later, matches = _constructed()
    mapped = map_edges(earlier, matches)
    top3 = edge_persistence(mapped, later, top=3)
    # later's top 3: B0->M, A0->B0, A1->B0, all among the mapped top 3; A1->B0 flipped sign
    assert top3["persisted"] == 1.0
    assert top3["endpoints_present"] == 1.0
    assert top3["sign_agreement"] == pytest.approx(2 / 3)
    top5 = edge_persistence(mapped, later, top=5)
    # A2->B1 is missing, and A2 has no counterpart among the mapped nodes
    assert top5["persisted"] == pytest.approx(4 / 5)
    assert top5["endpoints_present"] == pytest.approx(4 / 5)
    a, b = 19.0, 10.5  # total |weight| of the mapped earlier and of the later edges
    lo = min(6 / a, 3 / b) + min(4 / a, 2 / b) + 0 + min(8 / a, 4 / b) + min(1 / a, 0.5 / b)
    hi = max(6 / a, 3 / b) + max(4 / a, 2 / b) + 1 / b + max(8 / a, 4 / b) + max(1 / a, 0.5 / b)
    assert top5["weighted_jaccard"] == pytest.approx(lo / hi)


def test_identical_and_disjoint_wiring() -> None:
    _, later, _ = _constructed()
    same = edge_persistence(dict(later), later, top=5)
    assert same == {
        "persisted": 1.0,
        "endpoints_present": 1.0,
        "sign_agreement": 1.0,
        "weighted_jaccard": 1.0,
    }
    other = {(f("C", 0), f("D", 0)): 1.0}
    disjoint = edge_persistence(other, later, top=5)
    assert disjoint["persisted"] == 0.0
    assert disjoint["weighted_jaccard"] == 0.0


SITES = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")


def _permuted(sae: Any, perm: torch.Tensor) -> Any:
    other = copy.deepcopy(sae)
    with torch.no_grad():
        other.W_enc.copy_(sae.W_enc[:, perm])
        other.b_enc.copy_(sae.b_enc[perm])
        other.W_dec.copy_(sae.W_dec[perm])
    return other


@pytest.fixture(scope="module")
def circuits() -> dict[str, Any]:
    model = load_zoo_model()
    dirs = zoo_dictionary_dirs()
    saes = [load_dictionary(dirs[s]) for s in SITES]
    perms = [
        torch.randperm(int(s.cfg.d_sae), generator=torch.Generator().manual_seed(i))
        for i, s in enumerate(saes)
    ]
    permuted = [_permuted(s, p) for s, p in zip(saes, perms, strict=True)]
    prompts = task_prompt_set("agreement", 4)
    kwargs: dict[str, Any] = {"positions": "sum", "max_nodes": 16, "edges": True, "progress": False}
    graph = attribute(Lens(model, saes), prompts, LogitDiff(), **kwargs)
    graph_p = attribute(Lens(model, permuted), prompts, LogitDiff(), **kwargs)
    tokens = corpus_tokens(16, split="test")
    matches = {}
    for site, sae, other in zip(SITES, saes, permuted, strict=True):
        matching = seed_match(
            feature_activations(model, other, site, tokens),
            feature_activations(model, sae, site, tokens),
        )
        matches[site] = matching.pairs(0.1)
    return {"graph": graph, "graph_p": graph_p, "matches": matches, "perms": perms}


def test_permuted_circuit_maps_back_onto_the_original(circuits: dict[str, Any]) -> None:
    original = graph_edges(circuits["graph"])
    mapped = map_edges(graph_edges(circuits["graph_p"]), circuits["matches"])
    features = [e for e in original if e[0][0] == "feature" and e[1][0] == "feature"]
    assert len(features) >= 5  # real feature -> feature wiring is compared, not only effects
    # the seed's matching recovered the permutation for every feature in the circuit
    for site, perm in zip(SITES, circuits["perms"], strict=True):
        in_circuit = {
            k[3] for e in graph_edges(circuits["graph_p"]) for k in e if k[:2] == ("feature", site)
        }
        assert all(circuits["matches"][site][j] == int(perm[j]) for j in in_circuit)
    assert set(mapped) == set(original)
    for edge, weight in original.items():
        assert mapped[edge] == pytest.approx(weight, rel=1e-4, abs=1e-6)
    score = edge_persistence(mapped, original, top=len(original))
    assert score["persisted"] == 1.0
    assert score["sign_agreement"] == 1.0
    assert score["weighted_jaccard"] == pytest.approx(1.0, abs=1e-5)
