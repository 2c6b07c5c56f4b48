"""SAEDashboard's feature tables: neuron alignment (the largest components of the feature's decoder
direction), correlated neurons (the dimensions of the SAE's input whose values correlate most with
the feature's activation over the dataset) and correlated features (the other features of the same
dictionary whose activations correlate most with it).

Correlations are Pearson's r over the dataset's real tokens (padding excluded), from sums that the
activations pass accumulates batch by batch (`Moments.update`), so no `[tokens, d_sae]` matrix is
ever kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor


@dataclass
class FeatureTables:
    """The three tables of one feature: `(index, value)` rows, strongest first. `alignment` values
    are decoder components with their share of the direction's L1 norm; the others are r."""

    alignment: list[tuple[int, float, float]] = field(
        default_factory=list[tuple[int, float, float]]
    )
    neurons: list[tuple[int, float]] = field(default_factory=list[tuple[int, float]])
    features: list[tuple[int, float]] = field(default_factory=list[tuple[int, float]])


@dataclass
class _Sums:
    chosen: list[int]
    n: float = 0.0
    # Empty until the first batch, then: sum and sum of squares of the chosen features ([k] each),
    # of every feature and input dimension ([d_sae + d_in] each), and their products [k, d_sae + d_in].
    totals: list[Tensor] = field(default_factory=list[Tensor])


class Moments:
    """Running sums for the correlations of the chosen features of each site with all features of
    that site's dictionary and all dimensions of its input."""

    def __init__(self, features: Sequence[tuple[str, int]]) -> None:
        self._sites: dict[str, _Sums] = {}
        for site, index in features:
            self._sites.setdefault(site, _Sums([])).chosen.append(index)

    @property
    def sites(self) -> list[str]:
        """Sites with chosen features (their input activations are needed)."""
        return list(self._sites)

    def update(
        self,
        site: str,
        features: Float[Tensor, "b pos d_sae"],
        inputs: Float[Tensor, "b pos d_in"],
        keep: Bool[Tensor, "b pos"],
    ) -> None:
        """Add one batch: every feature's activation and the SAE's input at the real tokens."""
        sums = self._sites[site]
        # One batch's sums in float32 (the totals run in float64). Padded positions are zeroed
        # rather than dropped (no copy through boolean indexing): zero rows add nothing to a sum.
        width = features.shape[-1] + inputs.shape[-1]
        rows = torch.cat([features, inputs], -1).reshape(-1, width).float()
        if not bool(keep.all()):
            rows = rows * keep.reshape(-1, 1)
        chosen = rows[:, sums.chosen]  # [tokens, k]
        parts = [
            t.double()
            for t in (
                chosen.sum(0),
                chosen.square().sum(0),
                rows.sum(0),
                rows.square().sum(0),
                chosen.T @ rows,
            )
        ]
        if not sums.totals:
            sums.totals = [p.cpu() for p in parts]
        else:
            for total, part in zip(sums.totals, parts, strict=True):
                total += part.cpu()
        sums.n += float(keep.sum())

    def state(self) -> dict[str, Tensor]:
        """The running sums as named tensors (to store them; `load_state` reads them back)."""
        out: dict[str, Tensor] = {}
        for site, sums in self._sites.items():
            out[f"{site}/n"] = torch.tensor(sums.n, dtype=torch.float64)
            for j, total in enumerate(sums.totals):
                out[f"{site}/{j}"] = total
        return out

    def load_state(self, state: dict[str, Tensor]) -> None:
        """Replace the running sums with those `state` (from `state()`) holds."""
        for site, sums in self._sites.items():
            sums.n = float(state[f"{site}/n"])
            sums.totals = [state[f"{site}/{j}"] for j in range(5) if f"{site}/{j}" in state]

    def correlations(self, site: str) -> tuple[list[int], Float[Tensor, "k d_sae_plus_d_in"]]:
        """The chosen indices of `site` and their r with every feature, then every input
        dimension (0 where either side is constant)."""
        sums = self._sites[site]
        if not sums.totals or sums.n == 0:
            return sums.chosen, torch.zeros(len(sums.chosen), 0, dtype=torch.float64)
        f, ff, g, gg, fg = sums.totals
        n = sums.n
        mf, mg = f / n, g / n
        sf = (ff / n - mf**2).clamp_min(0).sqrt()
        sg = (gg / n - mg**2).clamp_min(0).sqrt()
        cov = fg / n - mf[:, None] * mg[None, :]
        scale = sf[:, None] * sg[None, :]
        r = torch.where(scale > 1e-12, cov / scale.clamp_min(1e-300), torch.zeros_like(cov))
        return sums.chosen, r.clamp(-1, 1)

    def tables(
        self, site: str, w_dec: Float[Tensor, "d_sae d_in"], n_rows: int = 3
    ) -> dict[int, FeatureTables]:
        """The `n_rows`-row tables of each chosen feature of `site` (`w_dec`: its dictionary's
        decoder), features correlated with themselves excluded."""
        chosen, r = self.correlations(site)
        d_sae = int(w_dec.shape[0])
        out: dict[int, FeatureTables] = {}
        for row, index in enumerate(chosen):
            direction = w_dec[index].detach().double().cpu()
            top = torch.topk(direction.abs(), min(n_rows, direction.numel())).indices
            l1 = float(direction.abs().sum()) or 1.0
            alignment = [(int(i), float(direction[i]), float(direction[i].abs()) / l1) for i in top]
            tables = FeatureTables(alignment)
            if r.shape[1]:
                features = r[row, :d_sae].clone()
                features[index] = float("-inf")
                top_f = torch.topk(features, min(n_rows, d_sae - 1)).indices
                neurons = r[row, d_sae:]
                top_n = torch.topk(neurons.abs(), min(n_rows, neurons.numel())).indices
                tables.features = [(int(i), float(features[i])) for i in top_f]
                tables.neurons = [(int(i), float(neurons[i])) for i in top_n]
            out[index] = tables
        return out
