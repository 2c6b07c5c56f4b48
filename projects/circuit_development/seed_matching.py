"""The seed's feature matching (seed 001, `src/feature_matching.py`), as options beside ours.

The seed matches two SAEs' features by their activations on the same tokens:

- activations below `sparsity_threshold` (1e-6) in absolute value count as zero;
- **activation cosine distance** `1 - cos(a_i, b_j)` between feature columns over the tokens,
  *uncentred* (ours, `matching.activation_correlation`, is the centred Pearson correlation); a
  feature that never fires has similarity 0 (distance 1) to everything, as the seed's sparse
  product gives;
- a **minimum-distance one-to-one assignment over all features**, dead ones included
  (`scipy.optimize.linear_sum_assignment`);
- **"dead = -1"**: a feature that never fires on the tokens gets matched distance -1. The seed marks
  feature i as dead when feature i of *either* SAE is dead (same index, not i's partner:
  `dead_rule="same_index"`); `dead_rule="partner"` (our default) marks i when i or the feature it
  was assigned to is dead, which is what the convention is for;
- a feature is **matched at threshold t** when `0 <= distance <= t`; the matched fraction is over
  *all* features of the SAE (the seed's plots use distance thresholds 0.1, 0.3, 0.5, 0.7, 0.9; its
  matching notebook is not in the stored snapshot, and this rule agrees with its committed curves
  and histograms to the histograms' bin width);
- **similarity histograms**: per checkpoint, a histogram of the matched pairs' similarity
  `1 - distance` over 49 equal bins on [0, 1] (dead features, at 2, and negative similarities fall
  outside), for the activation cosine and for the decoder cosine of the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment
from torch import Tensor

DeadRule = Literal["partner", "same_index"]
SEED_SPARSITY_THRESHOLD = 1e-6
SEED_DISTANCE_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
SEED_HISTOGRAM_EDGES = np.linspace(0.0, 1.0, 50)
DEAD = -1.0


def sparsify(acts: Float[Tensor, "n d"], threshold: float = SEED_SPARSITY_THRESHOLD) -> Tensor:
    """Activations with |a| < `threshold` set to zero (the seed's `get_sae_activations`)."""
    return torch.where(acts.abs() < threshold, torch.zeros_like(acts), acts)


def dead_mask(acts: Float[Tensor, "n d"]) -> Tensor:
    """Boolean `[d]`: features with no nonzero activation on any of the `n` tokens."""
    return (acts != 0).sum(0) == 0


def activation_cosine_distance(
    acts_a: Float[Tensor, "n d_a"], acts_b: Float[Tensor, "n d_b"]
) -> Float[np.ndarray, "d_a d_b"]:
    """`1 - cos` of every pair of (uncentred) activation columns, in [0, 2]; a zero column has
    distance 1."""
    if acts_a.shape[0] != acts_b.shape[0]:
        raise ValueError(
            f"activations must cover the same tokens, got {acts_a.shape[0]} and {acts_b.shape[0]} rows"
        )
    a = acts_a.double()
    b = acts_b.double()
    na = a.norm(dim=0)
    nb = b.norm(dim=0)
    a = a / torch.where(na > 0, na, torch.ones_like(na))
    b = b / torch.where(nb > 0, nb, torch.ones_like(nb))
    # rounding can push a cosine of identical directions above 1: clip, or the pair would read
    # as a negative distance and fail the "0 <= distance" test that separates dead pairs
    return (1.0 - a.T @ b).clamp(0.0, 2.0).numpy()


@dataclass(frozen=True)
class SeedMatching:
    """The seed's assignment of every feature of A to one of B.

    partner[i]: the feature of B assigned to feature i of A. distance[i]: their activation cosine
    distance, or -1 (`DEAD`) under the dead rule. similarity = 1 - distance for live pairs.
    """

    partner: np.ndarray
    distance: np.ndarray

    def matched_fraction(self, threshold: float) -> float:
        """Share of *all* of A's features with `0 <= distance <= threshold`."""
        d = self.distance
        return float(((d >= 0) & (d <= threshold)).sum()) / len(d) if len(d) else 0.0

    @property
    def live(self) -> np.ndarray:
        """Boolean mask of the pairs not marked dead."""
        return self.distance >= 0

    def pairs(self, threshold: float) -> dict[int, int]:
        """Feature of A -> feature of B for the pairs matched at `threshold`."""
        keep = (self.distance >= 0) & (self.distance <= threshold)
        return {int(i): int(self.partner[i]) for i in np.nonzero(keep)[0]}


def seed_match(
    acts_a: Float[Tensor, "n d_a"],
    acts_b: Float[Tensor, "n d_b"],
    *,
    dead_rule: DeadRule = "partner",
    sparsity_threshold: float = SEED_SPARSITY_THRESHOLD,
) -> SeedMatching:
    """Match A's features to B's by minimum total activation cosine distance, the seed's way."""
    if acts_a.shape[1] > acts_b.shape[1]:
        raise ValueError(
            f"A has more features ({acts_a.shape[1]}) than B ({acts_b.shape[1]}); every feature "
            "of A needs a partner: swap the two SAEs"
        )
    if dead_rule not in ("partner", "same_index"):
        raise ValueError(f"dead_rule must be 'partner' or 'same_index', got {dead_rule!r}")
    a = sparsify(acts_a, sparsity_threshold)
    b = sparsify(acts_b, sparsity_threshold)
    distance = activation_cosine_distance(a, b)
    rows, cols = linear_sum_assignment(distance)
    partner = np.empty(a.shape[1], dtype=np.int64)
    partner[rows] = cols
    matched = distance[np.arange(a.shape[1]), partner].copy()
    dead_a = dead_mask(a).numpy()
    dead_b = dead_mask(b).numpy()
    dead = dead_a | dead_b[partner] if dead_rule == "partner" else dead_a | dead_b[: a.shape[1]]
    matched[dead] = DEAD
    return SeedMatching(partner=partner, distance=matched)


def decoder_pair_cosine(
    W_dec_a: Float[Tensor, "d_a d_model"],
    W_dec_b: Float[Tensor, "d_b d_model"],
    partner: np.ndarray,
) -> np.ndarray:
    """cos(W_dec_a[i], W_dec_b[partner[i]]) for every i (the pairs come from the activations)."""
    a = W_dec_a.double()
    b = W_dec_b.double()[torch.as_tensor(partner)]
    # clipped to [-1, 1]: a rounding excess over 1 would drop identical pairs from the histogram
    return torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0).numpy()


def similarity_histogram(similarity: np.ndarray) -> np.ndarray:
    """Counts of `similarity` in the seed's 49 bins on [0, 1] (values outside are not counted)."""
    counts, _ = np.histogram(similarity, bins=SEED_HISTOGRAM_EDGES)
    return counts
