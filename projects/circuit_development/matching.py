"""Match SAE features across checkpoints: optimal one-to-one assignment on a similarity matrix.

Two similarities between feature i of SAE A and feature j of SAE B:

- **decoder cosine**: cos(W_dec_A[i], W_dec_B[j]). Cheap, but it compares directions in two
  residual streams, which share a basis only as far as training has not rotated it;
- **activation correlation**: the Pearson correlation of the two features' activations over one
  shared token set (each SAE encodes its own model's activations on the same tokens). Basis-free.

The assignment maximises the summed similarity (Hungarian algorithm,
`scipy.optimize.linear_sum_assignment`) over *live* features only: a dead feature (one that fires
on fewer than `min_active` of the shared tokens) has no activation profile and a meaningless
decoder row, so it is left out and stays unmatched. Features that fire on only a handful of tokens
are as ambiguous (any two such features correlate by chance), so the default `min_active` is 8. A pair counts as matched at threshold τ when
its similarity is at least τ; `matched_fraction` divides by the reference SAE's live features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from scipy.optimize import linear_sum_assignment
from torch import Tensor

Similarity = Literal["decoder", "activation"]
SIMILARITIES: tuple[Similarity, ...] = ("decoder", "activation")


def decoder_cosine(
    W_dec_a: Float[Tensor, "d_a d_model"], W_dec_b: Float[Tensor, "d_b d_model"]
) -> Float[Tensor, "d_a d_b"]:
    """Cosine similarity of every pair of decoder rows (a zero row has similarity 0)."""
    a = W_dec_a / W_dec_a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = W_dec_b / W_dec_b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return a @ b.T


def activation_correlation(
    acts_a: Float[Tensor, "n d_a"], acts_b: Float[Tensor, "n d_b"]
) -> Float[Tensor, "d_a d_b"]:
    """Pearson correlation of every pair of feature columns over the same `n` tokens.

    A constant column (e.g. a dead feature) correlates 0 with everything.
    """
    if acts_a.shape[0] != acts_b.shape[0]:
        raise ValueError(
            f"activations must cover the same tokens, got {acts_a.shape[0]} and {acts_b.shape[0]} rows"
        )
    a = acts_a.double() - acts_a.double().mean(0)
    b = acts_b.double() - acts_b.double().mean(0)
    a = a / a.norm(dim=0).clamp_min(1e-12)
    b = b / b.norm(dim=0).clamp_min(1e-12)
    return (a.T @ b).float()


def live_features(acts: Float[Tensor, "n d"], min_active: int = 1) -> Tensor:
    """Boolean mask `[d]` of features active (> 0) on at least `min_active` of the `n` rows."""
    return (acts > 0).sum(0) >= min_active


@dataclass(frozen=True)
class Matching:
    """A one-to-one assignment between the live features of SAE A and of SAE B.

    rows, cols: matched feature indices in A and in B (original indexing, dead features absent).
    similarity: the similarity of each pair. n_live_a, n_live_b: live features of A and B.
    """

    rows: np.ndarray
    cols: np.ndarray
    similarity: np.ndarray
    n_live_a: int
    n_live_b: int

    def pairs(self, threshold: float) -> dict[int, int]:
        """Feature of A -> feature of B, for pairs with similarity >= `threshold`."""
        keep = self.similarity >= threshold
        return {int(i): int(j) for i, j in zip(self.rows[keep], self.cols[keep], strict=True)}

    def matched_fraction(self, threshold: float) -> float:
        """Fraction of B's live features matched with similarity >= `threshold` (0 if none live)."""
        if self.n_live_b == 0:
            return 0.0
        return float((self.similarity >= threshold).sum()) / self.n_live_b


def hungarian_match(
    similarity: Float[Tensor, "d_a d_b"], live_a: Tensor, live_b: Tensor
) -> Matching:
    """The assignment of live A features to live B features maximising the summed similarity."""
    if similarity.shape != (live_a.numel(), live_b.numel()):
        raise ValueError(
            f"similarity has shape {tuple(similarity.shape)} but the live masks have "
            f"{live_a.numel()} and {live_b.numel()} entries"
        )
    index_a = live_a.nonzero().squeeze(1).cpu().numpy()
    index_b = live_b.nonzero().squeeze(1).cpu().numpy()
    sub = similarity.detach().cpu().double().numpy()[np.ix_(index_a, index_b)]
    if sub.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Matching(empty, empty, np.zeros(0), len(index_a), len(index_b))
    rows, cols = linear_sum_assignment(sub, maximize=True)
    return Matching(
        rows=index_a[rows],
        cols=index_b[cols],
        similarity=sub[rows, cols],
        n_live_a=len(index_a),
        n_live_b=len(index_b),
    )


def match_features(
    kind: Similarity,
    *,
    W_dec_a: Tensor,
    W_dec_b: Tensor,
    acts_a: Tensor,
    acts_b: Tensor,
    min_active: int = 8,
) -> Matching:
    """Match two SAEs by `kind` ("decoder" or "activation"); liveness always comes from the
    activations on the shared tokens (`acts_a`, `acts_b`: `[n, d_sae]` each)."""
    if kind == "decoder":
        similarity = decoder_cosine(W_dec_a, W_dec_b)
    elif kind == "activation":
        similarity = activation_correlation(acts_a, acts_b)
    else:
        raise ValueError(f"unknown similarity {kind!r}; choose one of {', '.join(SIMILARITIES)}")
    return hungarian_match(
        similarity, live_features(acts_a, min_active), live_features(acts_b, min_active)
    )


@torch.no_grad()
def feature_activations(
    model: object, sae: object, hook: str, tokens: Tensor, batch_size: int = 64
) -> Float[Tensor, "n d_sae"]:
    """The SAE's feature activations on `model`'s activations at `hook`, BOS positions dropped,
    one row per token of `tokens` (`[batch, seq]` -> `[batch * (seq - 1), d_sae]`)."""
    rows: list[Tensor] = []
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(  # type: ignore[attr-defined]
            tokens[start : start + batch_size], names_filter=lambda name: name == hook
        )
        x = cache[hook][:, 1:]
        rows.append(sae.encode(x.reshape(-1, x.shape[-1])))  # type: ignore[attr-defined]
    return torch.cat(rows)
