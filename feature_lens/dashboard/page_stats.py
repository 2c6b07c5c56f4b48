"""What a feature page needs from the corpus, gathered chunk by chunk and merged exactly.

A page shows a feature's top examples, examples from intervals of its activation range, a
histogram of its positive activations and their percentiles (the viewer's feature JSON), and the
prompts its neighbours are measured on. None of these needs the feature's activations at every
token of the corpus on one machine: each is a statistic of one chunk of prompts that merges with
the next chunk's without loss, so the driver of a corpus pass holds an amount of data that does
not grow with the corpus (`FeatureStats`):

- **top examples**: the `n_top` prompts with the largest maximum activation (ties: the lower
  prompt index first), each with its row of activations; merged by keeping the best `n_top` of
  the two lists, which is the best `n_top` of the union;
- **interval examples**: the active prompts outside the top, grouped by which of `n_intervals`
  equal-width intervals of `(0, max_act]` holds their maximum (the intervals SAEDashboard shows),
  and `per_interval` of each group drawn uniformly at random: every prompt gets a pseudo-random
  key from the seed, the feature and its index in the corpus alone, and a group shows its
  `per_interval` smallest keys outside the top. Each interval keeps its members in key order up
  to the `per_interval`-th one outside the current top: a prompt outside the top of the prompts
  seen so far never enters the final top, so nothing dropped can be needed later, and the kept
  lists are the same whatever the chunking. The interval edges need the feature's maximum over
  the corpus, which the forward step of the corpus pass gives before this step runs;
- **histogram**: `n_bins` equal-width bins of the positive activations over `[0, max_act]`
  (`torch.histc`, counts add);
- **percentiles** (the viewer's `quantile_values`): read from a histogram of `fine_bins` (65,536)
  equal-width bins over the same range, stored sparsely. Each percentile is the linear
  interpolation `torch.quantile` uses, with each order statistic replaced by the middle of its bin
  (the largest by the exact maximum), so it is within half a bin, `max_act / 131,072`, of the
  exact value (tested against `numpy.percentile`);
- **neighbour prompts**: the `n_heavy` prompts with the largest activation summed over positions.

A chunk's statistics come from its dense `[prompts, positions]` activations (`chunk_stats`);
`merge` adds the next chunk's in corpus order. Every selection is a total order on
`(value, prompt index)` or `(key, prompt index)`, so any chunking gives the same result, to the bit.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.typed import float_list, int_list

FINE_BINS = 2**16
"""Bins of the histogram the percentiles are read from."""
_MODULUS = 2**31 - 1


@dataclass(frozen=True)
class PageSpec:
    """How many examples of each kind a page shows (the statistics' sizes)."""

    n_top: int = 10
    n_intervals: int = 4
    per_interval: int = 4
    n_bins: int = 24
    n_heavy: int = 4
    seed: int = 0
    fine_bins: int = FINE_BINS


@dataclass
class Candidate:
    """A prompt kept for a page: its score (maximum, or summed, activation), index in the
    corpus, and the feature's activations over its real tokens."""

    score: float
    prompt: int
    row: Tensor  # float32 [length]


@dataclass
class FeatureStats:
    """One feature's page statistics over some prompts (see the module docstring)."""

    site: str
    index: int
    max_act: float
    n_active: int
    hist: Tensor  # int64 [n_bins]
    fine_index: Tensor  # int64 [nonzero bins], ascending
    fine_count: Tensor  # int64, their counts
    top: list[Candidate]
    heavy: list[tuple[float, int]]
    samples: list[list[tuple[int, Candidate]]]  # per interval: (key, candidate), ascending
    spec: PageSpec = field(default_factory=PageSpec)
    # While merging: the fine histogram as dense counts (adding a chunk's few bins is then O(its
    # bins), not a sort of both); `fine` gives the sparse form either way.
    fine_total: Tensor | None = field(default=None, repr=False)

    def fine(self) -> tuple[Tensor, Tensor]:
        """The fine histogram's nonzero bins (ascending) and their counts."""
        if self.fine_total is None:
            return self.fine_index, self.fine_count
        index = torch.nonzero(self.fine_total).flatten()
        return index, self.fine_total[index]

    def merge(self, other: FeatureStats) -> None:
        """Add `other` (the next prompts' statistics of the same feature) in place."""
        spec = self.spec
        self.n_active += other.n_active
        self.hist = self.hist + other.hist
        if self.fine_total is None:
            self.fine_total = torch.zeros(spec.fine_bins, dtype=torch.long)
            self.fine_total.index_add_(0, self.fine_index, self.fine_count)
        if other.fine_total is not None:
            self.fine_total += other.fine_total
        else:
            self.fine_total.index_add_(0, other.fine_index, other.fine_count)
        self.top = _best([*self.top, *other.top], spec.n_top)
        self.heavy = sorted([*self.heavy, *other.heavy], key=lambda h: (-h[0], h[1]))[
            : spec.n_heavy
        ]
        shown = {c.prompt for c in self.top}
        self.samples = [
            _trim(sorted([*a, *b], key=lambda s: (s[0], s[1].prompt)), shown, spec.per_interval)
            for a, b in zip(self.samples, other.samples, strict=True)
        ]

    def interval_edges(self) -> list[float]:
        """The edges of the `n_intervals` intervals of `(0, max_act]`."""
        q = self.spec.n_intervals
        return [self.max_act * i / q for i in range(q + 1)]

    def interval_groups(self) -> list[list[Candidate]]:
        """Per interval (lowest first), the sampled prompts outside the top, strongest first."""
        shown = {c.prompt for c in self.top}
        out: list[list[Candidate]] = []
        for samples in self.samples:
            pick = [c for _, c in samples if c.prompt not in shown][: self.spec.per_interval]
            out.append(_best(pick, len(pick)))
        return out

    def hist_edges(self) -> Tensor:
        """The histogram's bin edges (`n_bins + 1`)."""
        return torch.linspace(0, _range_top(self.max_act), self.spec.n_bins + 1)

    def percentiles(self) -> list[float]:
        """The 1st to 100th percentiles of the positive activations (empty when none), each
        within `max_act / (2 * fine_bins)` of `numpy.percentile(..., method="linear")`."""
        n = self.n_active
        if n == 0:
            return []
        width = _range_top(self.max_act) / self.spec.fine_bins
        fine_index, fine_count = self.fine()
        centres = (fine_index.double() + 0.5) * width
        ends = torch.cumsum(fine_count, 0)  # order statistics below each bin's end

        def order_statistic(rank: Tensor) -> Tensor:
            value = centres[torch.searchsorted(ends, rank, right=True)]
            value = torch.minimum(value, torch.tensor(self.max_act, dtype=torch.float64))
            return torch.where(rank == n - 1, torch.tensor(self.max_act).double(), value)

        h = (n - 1) * torch.linspace(0.01, 1.0, 100, dtype=torch.float64)
        low = torch.floor(h).long()
        high = torch.clamp(low + 1, max=n - 1)
        a, b = order_statistic(low), order_statistic(high)
        return float_list(a + (h - low.double()) * (b - a))

    def strongest_prompts(self) -> list[int]:
        """The prompts with the largest summed activation (the neighbours' prompts)."""
        return [p for _, p in self.heavy]

    # -- as named tensors, for the corpus pass's cache -----------------------------------------

    def state(self, prefix: str) -> dict[str, Tensor]:
        """The statistics as tensors named `prefix/...`; `from_state` reads them back."""
        fine_index, fine_count = self.fine()
        out = {
            f"{prefix}/scalars": torch.tensor([self.max_act], dtype=torch.float64),
            f"{prefix}/n_active": torch.tensor([self.n_active], dtype=torch.long),
            f"{prefix}/hist": self.hist,
            f"{prefix}/fine_index": fine_index,
            f"{prefix}/fine_count": fine_count,
            f"{prefix}/heavy_score": torch.tensor([s for s, _ in self.heavy], dtype=torch.float64),
            f"{prefix}/heavy_prompt": torch.tensor([p for _, p in self.heavy], dtype=torch.long),
        }
        out |= _candidates_state(f"{prefix}/top", self.top)
        for q, samples in enumerate(self.samples):
            name = f"{prefix}/interval{q}"
            out[f"{name}/key"] = torch.tensor([k for k, _ in samples], dtype=torch.long)
            out |= _candidates_state(name, [c for _, c in samples])
        return out

    @classmethod
    def from_state(
        cls, state: Mapping[str, Tensor], prefix: str, site: str, index: int, spec: PageSpec
    ) -> FeatureStats:
        """The inverse of `state`."""
        samples: list[list[tuple[int, Candidate]]] = []
        for q in range(spec.n_intervals):
            name = f"{prefix}/interval{q}"
            keys = int_list(state[f"{name}/key"])
            samples.append(list(zip(keys, _candidates_from(state, name), strict=True)))
        return cls(
            site=site,
            index=index,
            max_act=float(state[f"{prefix}/scalars"][0]),
            n_active=int(state[f"{prefix}/n_active"][0]),
            hist=state[f"{prefix}/hist"],
            fine_index=state[f"{prefix}/fine_index"],
            fine_count=state[f"{prefix}/fine_count"],
            top=_candidates_from(state, f"{prefix}/top"),
            heavy=list(
                zip(
                    float_list(state[f"{prefix}/heavy_score"]),
                    int_list(state[f"{prefix}/heavy_prompt"]),
                    strict=True,
                )
            ),
            samples=samples,
            spec=spec,
        )


def chunk_stats(
    site: str,
    index: int,
    acts: Float[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    *,
    first_prompt: int,
    max_act: float,
    spec: PageSpec,
) -> FeatureStats:
    """The statistics of prompts `first_prompt ...` from their activations `acts` (0 at padded
    positions) and lengths; `max_act` is the feature's largest positive activation over the whole
    corpus (0 when it never fires)."""
    acts = acts.float()
    n, width = int(acts.shape[0]), int(acts.shape[1])
    mask = torch.arange(width)[None, :] < lengths[:, None]
    real = acts[mask]
    positive = real[real > 0]
    top_edge = _range_top(max_act)
    hist = torch.histc(positive, bins=spec.n_bins, min=0, max=top_edge).long()
    fine = torch.histc(positive, bins=spec.fine_bins, min=0, max=top_edge).long()
    fine_index = torch.nonzero(fine).flatten()
    maxima = acts.max(1).values
    totals = acts.sum(1)
    prompts = torch.arange(first_prompt, first_prompt + n)
    scores, sizes = float_list(maxima), int_list(lengths)

    def candidate(i: int) -> Candidate:
        return Candidate(scores[i], first_prompt + i, acts[i, : sizes[i]].clone())

    ranked = torch.argsort(maxima, descending=True, stable=True)
    active = ranked[maxima[ranked] > 0]
    top_rows = int_list(active[: spec.n_top])
    top = [candidate(i) for i in top_rows]
    in_top = set(top_rows)
    order = torch.argsort(totals, descending=True, stable=True)
    order = order[totals[order] > 0][: spec.n_heavy]
    heavy = [(float(totals[i]), first_prompt + i) for i in int_list(order)]
    keys = sample_keys(prompts, site, index, spec.seed)
    edges = [max_act * i / spec.n_intervals for i in range(spec.n_intervals + 1)]
    values = maxima.double()
    samples: list[list[tuple[int, Candidate]]] = []
    for q in range(spec.n_intervals):
        inside = (values > 0) & (values >= edges[q])
        inside &= values <= edges[q + 1] if q == spec.n_intervals - 1 else values < edges[q + 1]
        members = torch.nonzero(inside).flatten()
        by_key = int_list(members[torch.argsort(keys[members], stable=True)])
        kept: list[int] = []
        for i in by_key:
            if len(kept) - len(in_top.intersection(kept)) >= spec.per_interval:
                break
            kept.append(i)
        samples.append([(int(keys[i]), candidate(i)) for i in kept])
    return FeatureStats(
        site=site,
        index=index,
        max_act=float(max_act),
        n_active=int(positive.numel()),
        hist=hist,
        fine_index=fine_index,
        fine_count=fine[fine_index],
        top=top,
        heavy=heavy,
        samples=samples,
        spec=spec,
    )


def sample_keys(prompts: Int[Tensor, " n"], site: str, index: int, seed: int) -> Tensor:
    """A pseudo-random key per prompt index, fixed by the seed and the feature (a few rounds of
    the Park-Miller generator over the index, salted with a CRC of the feature's name): a prompt's
    key does not depend on which chunk, worker or process computes it."""
    salt = zlib.crc32(f"{seed}:{site}:{index}".encode()) % _MODULUS
    x = (prompts.long() * 40503 + salt + 1) % _MODULUS
    for _ in range(4):
        x = (x * 48271) % _MODULUS
        x = x ^ (x >> 11)
    return x


def stats_of(
    site: str,
    index: int,
    acts: Float[Tensor, "n pos"],
    lengths: Int[Tensor, " n"],
    spec: PageSpec,
) -> FeatureStats:
    """The statistics of a whole dataset's activations at once (one chunk)."""
    mask = torch.arange(acts.shape[1])[None, :] < lengths[:, None]
    real = acts[mask]
    positive = real[real > 0]
    max_act = float(positive.max()) if positive.numel() else 0.0
    return chunk_stats(site, index, acts, lengths, first_prompt=0, max_act=max_act, spec=spec)


def _range_top(max_act: float) -> float:
    return max_act if max_act > 0 else 1.0


def _trim(
    samples: list[tuple[int, Candidate]], shown: set[int], per_interval: int
) -> list[tuple[int, Candidate]]:
    """`samples` (in key order) up to and including the `per_interval`-th outside `shown`."""
    out: list[tuple[int, Candidate]] = []
    free = 0
    for item in samples:
        if free >= per_interval:
            break
        out.append(item)
        free += item[1].prompt not in shown
    return out


def _best(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.prompt))[:k]


def _candidates_state(name: str, candidates: Sequence[Candidate]) -> dict[str, Tensor]:
    rows = [c.row.float() for c in candidates]
    return {
        f"{name}/score": torch.tensor([c.score for c in candidates], dtype=torch.float64),
        f"{name}/prompt": torch.tensor([c.prompt for c in candidates], dtype=torch.long),
        f"{name}/length": torch.tensor([len(r) for r in rows], dtype=torch.long),
        f"{name}/rows": torch.cat(rows) if rows else torch.zeros(0),
    }


def _candidates_from(state: Mapping[str, Tensor], name: str) -> list[Candidate]:
    scores = float_list(state[f"{name}/score"])
    prompts = int_list(state[f"{name}/prompt"])
    rows = torch.split(state[f"{name}/rows"], int_list(state[f"{name}/length"]))
    return [Candidate(s, p, r.clone()) for s, p, r in zip(scores, prompts, rows, strict=True)]
