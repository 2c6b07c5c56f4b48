"""Baselines: the value a node is set to when it is "removed".

- "corrupted": its value on the corrupted prompt (same length, the minimal change that flips the
  answer);
- "zero": zero;
- "mean": its mean over every token of a dataset (one vector per site, the same at every position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.metrics import Metric, evaluate, needs_features
from feature_lens.attribution.prompts import PromptSet
from feature_lens.errors import InputError
from feature_lens.lens import EMBED_SITE, Lens, RunPlan

BaselineKind = Literal["corrupted", "zero", "mean"]


@dataclass
class NodeValues:
    """Every node's value for a batch of prompts: features, errors, token embeddings."""

    features: dict[str, Tensor]  # site -> [n, pos, d_sae]
    errors: dict[str, Tensor]  # site -> [n, pos, d_out]
    embeddings: Float[Tensor, "n pos d_model"]

    def row(self, i: int) -> NodeValues:
        """Values of prompt i, keeping a batch dimension of 1."""
        return NodeValues(
            {s: v[i : i + 1] for s, v in self.features.items()},
            {s: v[i : i + 1] for s, v in self.errors.items()},
            self.embeddings[i : i + 1],
        )


def node_values(lens: Lens, tokens: Int[Tensor, "n pos"]) -> NodeValues:
    """Node values on `tokens` (no gradients)."""
    with torch.no_grad():
        result = lens.forward(tokens, RunPlan())
    assert result.embeddings is not None
    return NodeValues(result.features, result.errors, result.embeddings)


def node_values_with_gradients(
    lens: Lens, tokens: Tensor, answers: Tensor | None, metric: Metric
) -> tuple[NodeValues, dict[str, Tensor]]:
    """Node values on `tokens` and, from the same forward, the gradient of the metric (summed over
    prompts) w.r.t. every site's output and the token embeddings (`{site: [n, pos, d]}`, zeros
    where the metric does not depend on a site): the one clean run attribution patching needs.
    The zero leaves added for the gradients leave every value unchanged."""
    sites = [*lens.sites, EMBED_SITE]
    with torch.enable_grad():
        result = lens.forward(tokens, RunPlan(leaf_sites=sites, keep_graph=needs_features(metric)))
        value = evaluate(metric, result, answers).sum()
        present = [s for s in sites if s in result.leaves]
        grads = cast(
            "tuple[Tensor | None, ...]",
            torch.autograd.grad(value, [result.leaves[s] for s in present], allow_unused=True),
        )
    assert result.embeddings is not None
    values = NodeValues(
        {s: v.detach() for s, v in result.features.items()},
        {s: v.detach() for s, v in result.errors.items()},
        result.embeddings.detach(),
    )
    site_grads = {
        s: torch.zeros_like(result.leaves[s]) if g is None else g
        for s, g in zip(present, grads, strict=True)
    }
    return values, site_grads


def baseline_values(
    lens: Lens,
    prompts: PromptSet,
    kind: BaselineKind,
    *,
    mean_tokens: Int[Tensor, "m pos"] | None = None,
) -> NodeValues:
    """Baseline values broadcastable to the clean values of `prompts` (`[n or 1, pos or 1, d]`)."""
    if kind == "corrupted":
        if prompts.corrupted is None:
            raise InputError(
                "baseline 'corrupted' needs corrupted prompts; give them, or use baseline='zero' "
                "or 'mean'"
            )
        return node_values(lens, prompts.corrupted)
    if kind == "zero":
        # Shapes come from the dictionaries and the model: no forward pass is needed.
        dtype, device = lens.model.cfg.dtype, lens.device
        features: dict[str, torch.Tensor] = {}
        errors: dict[str, torch.Tensor] = {}
        for site, dictionary in lens.dictionaries.items():
            own = dictionary.W_dec.dtype
            features[site] = torch.zeros(1, 1, dictionary.d_sae, dtype=own, device=device)
            errors[site] = torch.zeros(
                1, 1, dictionary.d_out, dtype=torch.promote_types(dtype, own), device=device
            )
        embeddings = torch.zeros(1, 1, int(lens.model.cfg.d_model), dtype=dtype, device=device)
        return NodeValues(features, errors, embeddings)
    if kind == "mean":
        if mean_tokens is None or mean_tokens.numel() == 0:
            raise InputError("baseline 'mean' needs a dataset of tokens to average over")
        values = node_values(lens, mean_tokens)

        def mean(t: Float[Tensor, "n pos d"]) -> Float[Tensor, "1 1 d"]:
            return t.reshape(-1, t.shape[-1]).mean(0).reshape(1, 1, -1)

        return NodeValues(
            {s: mean(v) for s, v in values.features.items()},
            {s: mean(v) for s, v in values.errors.items()},
            mean(values.embeddings),
        )
    raise InputError(f"unknown baseline {kind!r}; choose 'corrupted', 'zero' or 'mean'")
