"""One forward pass over a dashboard's corpus that yields everything the pages need from it.

Before this pass the dashboards ran two forwards over the corpus: one for every feature's density
(to choose the top features) and one for the chosen features' activations and correlation sums.
The chosen features are not known until the densities are, so this pass keeps, per site, what any
choice will need:

- `counts` `[d_sae]`: real tokens on which each feature is active (> 0), for the densities;
- the nonzero activations of every feature at real tokens, as (token, feature, value) triples in
  token order (sparse dictionaries keep a few per token), from which any feature's `[n, pos]`
  activations are rebuilt exactly;
- the correlation sums that do not depend on the choice: sum and sum of squares of every feature
  and every input dimension, and the products of every feature with every input dimension
  `[d_sae, d_in]` (the size of one decoder). The products of the chosen features with all features
  are computed after the choice from the triples (`CorpusStats.moments`).

The corpus is cut into chunks of `CHUNK_PROMPTS` prompts whatever runs the pass; each chunk's sums
start from zero and chunks are merged in corpus order (`merge`), so one process and any number of
workers (`feature_lens.distributed`) add the same numbers in the same order and write the same
bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from feature_lens.dashboard.tables import Moments
from feature_lens.lens import Lens, RunPlan

CHUNK_PROMPTS = 256
"""Prompts per chunk of the corpus pass: the unit of work a worker takes and of the merge order."""


@dataclass
class SiteStats:
    """One site's part of the corpus pass (see the module docstring). Token indices are flat over
    `[n_prompts, width]` of the whole corpus (`prompt * width + pos`)."""

    counts: Tensor  # [d_sae] float64, active real tokens per feature
    token: Tensor  # [nnz] int64, flat token index, ascending
    feature: Tensor  # [nnz] int64
    value: Tensor  # [nnz] float32
    f_sum: Tensor  # [d_sae + d_in] float64: sums of every feature, then every input dimension
    f_sq: Tensor  # [d_sae + d_in] float64: sums of squares
    f_x: Tensor  # [d_sae, d_in] float64: sums of feature times input dimension
    n: float = 0.0  # real tokens


@dataclass
class CorpusStats:
    """The corpus pass's result over some prompts (a chunk, or the whole corpus once merged)."""

    n_prompts: int
    width: int
    n_tokens: int
    sites: dict[str, SiteStats] = field(default_factory=dict[str, SiteStats])

    def densities(self) -> dict[str, Tensor]:
        """Per site, the fraction of real tokens on which each feature is active (> 0)."""
        return {site: (s.counts / max(self.n_tokens, 1)).float() for site, s in self.sites.items()}

    def activations(self, site: str, index: int) -> Tensor:
        """Feature `index` of `site` at every token `[n_prompts, width]` (0 at padded positions)."""
        s = self.sites[site]
        hit = s.feature == index
        out = torch.zeros(self.n_prompts * self.width)
        out[s.token[hit]] = s.value[hit]
        return out.reshape(self.n_prompts, self.width)

    def moments(self, features: Sequence[tuple[str, int]]) -> Moments:
        """The correlation sums of the chosen `(site, index)` features (`Moments.load_state`)."""
        moments = Moments(features)
        state: dict[str, Tensor] = {}
        for site in moments.sites:
            s = self.sites[site]
            chosen = [i for f_site, i in features if f_site == site]
            d_sae = int(s.counts.shape[0])
            total = self.n_prompts * self.width
            # Chosen features as dense columns over tokens; their products with every feature
            # from the sparse triples (S^T A), with every input dimension from f_x.
            dense = torch.zeros(total, len(chosen), dtype=torch.float64)
            for k, index in enumerate(chosen):
                hit = s.feature == index
                dense[s.token[hit], k] = s.value[hit].double()
            sparse = torch.sparse_coo_tensor(
                torch.stack([s.feature, s.token]),
                s.value.double(),
                (d_sae, total),
                check_invariants=False,
            )
            ff = torch.sparse.mm(sparse, dense).T  # [k, d_sae]
            idx = torch.tensor(chosen, dtype=torch.long)
            state[f"{site}/n"] = torch.tensor(s.n, dtype=torch.float64)
            state[f"{site}/0"] = s.f_sum[idx]
            state[f"{site}/1"] = s.f_sq[idx]
            state[f"{site}/2"] = s.f_sum
            state[f"{site}/3"] = s.f_sq
            state[f"{site}/4"] = torch.cat([ff, s.f_x[idx]], 1)
        moments.load_state(state)
        return moments

    def state(self) -> dict[str, Tensor]:
        """As named tensors (for the cache); `from_state` reads them back."""
        out = {"shape": torch.tensor([self.n_prompts, self.width, self.n_tokens])}
        for site, s in self.sites.items():
            for name in ("counts", "token", "feature", "value", "f_sum", "f_sq", "f_x"):
                out[f"{site}/{name}"] = getattr(s, name)
            out[f"{site}/n"] = torch.tensor(s.n, dtype=torch.float64)
        return out

    @classmethod
    def from_state(cls, state: dict[str, Tensor], sites: Iterable[str]) -> CorpusStats:
        """The inverse of `state`."""
        n_prompts, width, n_tokens = (int(v) for v in state["shape"])
        stats = cls(n_prompts, width, n_tokens)
        for site in sites:
            fields = {
                name: state[f"{site}/{name}"]
                for name in ("counts", "token", "feature", "value", "f_sum", "f_sq", "f_x")
            }
            stats.sites[site] = SiteStats(**fields, n=float(state[f"{site}/n"]))
        return stats


def chunk_starts(n_prompts: int, chunk: int = CHUNK_PROMPTS) -> list[tuple[int, int]]:
    """The corpus's chunks as `(start, stop)` prompt ranges, in corpus order."""
    return [(start, min(start + chunk, n_prompts)) for start in range(0, n_prompts, chunk)]


def pass_chunk(
    lens: Lens, tokens: Tensor, lengths: Tensor, *, offset: int = 0, batch_size: int = 64
) -> CorpusStats:
    """The corpus pass over `tokens` `[n, width]` (right-padded, `lengths` real tokens each):
    one forward per `batch_size` prompts. `offset`: the index of the chunk's first prompt in the
    corpus (token indices are stored as in the whole corpus)."""
    from feature_lens.dashboard.data import stop_layer

    n, width = int(tokens.shape[0]), int(tokens.shape[1])
    mask = torch.arange(width)[None, :] < lengths[:, None]
    inputs = {site: lens.dictionary(site).hook_in for site in lens.sites}
    plan = RunPlan(
        record_hooks=sorted(set(inputs.values())), stop_at_layer=stop_layer(lens, lens.sites)
    )
    merger = Merger()
    for start in range(0, n, batch_size):
        batch = tokens[start : start + batch_size].to(lens.device)
        keep = mask[start : start + batch_size].reshape(-1, 1)
        with torch.no_grad():
            result = lens.forward(batch, plan)
        base = (offset + start) * width
        part = CorpusStats(int(batch.shape[0]), width, int(keep.sum()))
        for site in lens.sites:
            feats = result.features[site].float().cpu()
            x = result.hooks[inputs[site]].float().cpu()
            feats = feats.reshape(-1, feats.shape[-1]) * keep
            x = x.reshape(-1, x.shape[-1]) * keep
            rows = torch.cat([feats, x], 1)
            where = torch.nonzero(feats)  # row-major: token order
            part.sites[site] = SiteStats(
                counts=(feats > 0).sum(0).double(),
                token=where[:, 0] + base,
                feature=where[:, 1],
                value=feats[where[:, 0], where[:, 1]],
                f_sum=rows.sum(0).double(),
                f_sq=rows.square().sum(0).double(),
                f_x=(feats.T @ x).double(),
                n=float(keep.sum()),
            )
        merger.add(part)
    return merger.result()


class Merger:
    """Adds consecutive parts of one corpus (batches or chunks) in corpus order: triples are
    concatenated at the end, sums are added as the parts come (memory: the sums and the triples)."""

    def __init__(self) -> None:
        self._sites: dict[str, SiteStats] = {}
        self._triples: dict[str, list[tuple[Tensor, Tensor, Tensor]]] = {}
        self._n_prompts = 0
        self._n_tokens = 0
        self._width = 0

    def add(self, part: CorpusStats) -> None:
        """Add the next part."""
        if not self._sites:
            self._width = part.width
            for site, s in part.sites.items():
                self._sites[site] = SiteStats(
                    s.counts.clone(),
                    s.token[:0],
                    s.feature[:0],
                    s.value[:0],
                    s.f_sum.clone(),
                    s.f_sq.clone(),
                    s.f_x.clone(),
                    s.n,
                )
                self._triples[site] = [(s.token, s.feature, s.value)]
        else:
            for site, s in part.sites.items():
                total = self._sites[site]
                total.counts += s.counts
                total.f_sum += s.f_sum
                total.f_sq += s.f_sq
                total.f_x += s.f_x
                total.n += s.n
                self._triples[site].append((s.token, s.feature, s.value))
        self._n_prompts += part.n_prompts
        self._n_tokens += part.n_tokens

    def result(self) -> CorpusStats:
        """Everything added so far as one `CorpusStats`."""
        stats = CorpusStats(self._n_prompts, self._width, self._n_tokens)
        for site, total in self._sites.items():
            triples = self._triples[site]
            total.token = torch.cat([t for t, _, _ in triples])
            total.feature = torch.cat([f for _, f, _ in triples])
            total.value = torch.cat([v for _, _, v in triples])
            self._triples[site] = [(total.token, total.feature, total.value)]
            stats.sites[site] = total
        return stats


def merge(parts: Iterable[CorpusStats]) -> CorpusStats:
    """Consecutive parts of one corpus, in corpus order, as one (`Merger`)."""
    merger = Merger()
    for part in parts:
        merger.add(part)
    return merger.result()
