"""Find SAE features that track a known property of the zoo's planted tasks.

For two groups of prompts that differ in one property (e.g. head noun plural vs singular), compare
each feature's activation at one position: how often it fires in each group and its mean value.
A feature that fires in nearly all of group A and almost none of group B is a candidate "A"
feature; `docs/zoo.md` lists the ones found this way, with these numbers as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor


@dataclass(frozen=True)
class FeatureContrast:
    """One feature's behaviour on two prompt groups at one position.

    fire_a, fire_b: fraction of prompts where the feature is active (> 0).
    mean_a, mean_b: mean activation (SAE units).
    """

    hook_name: str
    feature: int
    fire_a: float
    fire_b: float
    mean_a: float
    mean_b: float


@torch.no_grad()
def feature_activations(
    model: Any, sae: Any, tokens: Int[Tensor, "batch seq"], position: int = -1
) -> Tensor:
    """SAE feature activations `[batch, d_sae]` at `position` of each prompt."""
    hook = str(sae.cfg.metadata.hook_name)
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=hook)
    return sae.encode(cache[hook][:, position])


def contrast_features(
    model: Any,
    sae: Any,
    group_a: Int[Tensor, "n_a seq"],
    group_b: Int[Tensor, "n_b seq"],
    *,
    position: int = -1,
    top: int = 5,
) -> list[FeatureContrast]:
    """The `top` features that best separate group A from group B (by fire_a - fire_b)."""
    acts_a = feature_activations(model, sae, group_a, position)
    acts_b = feature_activations(model, sae, group_b, position)
    fire_a, fire_b = (acts_a > 0).float().mean(0), (acts_b > 0).float().mean(0)
    score = fire_a - fire_b + 1e-3 * (acts_a.mean(0) - acts_b.mean(0))
    best = score.argsort(descending=True)[:top]
    return [
        FeatureContrast(
            hook_name=str(sae.cfg.metadata.hook_name),
            feature=int(i),
            fire_a=fire_a[i].item(),
            fire_b=fire_b[i].item(),
            mean_a=acts_a[:, i].mean().item(),
            mean_b=acts_b[:, i].mean().item(),
        )
        for i in best
    ]
