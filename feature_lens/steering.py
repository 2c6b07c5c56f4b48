"""Steering: add a multiple of a direction to the residual stream and see what changes.

`steer(lens, prompts, directions, alpha)` adds `alpha * v_hat_j` (direction j of a `Directions`,
unit length unless built with `normalize=False`) at the direction's hook at every position (or the
given ones), recomputes everything downstream, and reports the change in the last position's logits
(which tokens it promotes and suppresses) and in every later dictionary's features. With
`max_new_tokens`, it also generates greedily with the same addition at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.lens import Directions, Lens, RunPlan, SiteEdit


@dataclass
class SteeringResult:
    """What adding `alpha` times the direction did.

    Attributes:
        logit_change: steered minus clean logits at the last position, `[batch, d_vocab]`.
        promoted / suppressed: the tokens whose logits rose / fell most (mean over the batch).
        feature_change: site -> steered minus clean features `[batch, pos, d_sae]`, for the
            dictionaries after the direction's hook.
        generations: greedy continuations with steering (when asked for).
    """

    alpha: float
    logit_change: Tensor
    promoted: list[tuple[str, float]]
    suppressed: list[tuple[str, float]]
    feature_change: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    generations: list[str] = field(default_factory=list[str])


def steer(
    lens: Lens,
    prompts: Any,
    directions: Directions,
    alpha: float,
    *,
    index: int = 0,
    positions: Sequence[int] | None = None,
    top_k: int = 10,
    max_new_tokens: int = 0,
) -> SteeringResult:
    """Steer with direction `index` of `directions` scaled by `alpha` (see the module docstring)."""
    if not 0 <= index < directions.d_sae:
        raise InputError(
            f"direction index {index} is out of range: {directions.name!r} has "
            f"{directions.d_sae} direction(s), 0..{directions.d_sae - 1}; pass --index in that range"
        )
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be 0 or more, got {max_new_tokens}")
    if directions.site not in lens.dictionaries:
        lens = lens.attach(directions)
    tokens = lens.to_tokens(prompts)
    n_ctx = int(lens.model.cfg.n_ctx)
    if tokens.shape[1] + max_new_tokens > n_ctx:
        raise InputError(
            f"generating {max_new_tokens} tokens after a {tokens.shape[1]}-token prompt passes the "
            f"model's context of {n_ctx} tokens; generate at most "
            f"{max(0, n_ctx - tokens.shape[1])} (--generate) or shorten the prompt"
        )
    top_k = min(top_k, int(lens.model.cfg.d_vocab))
    vector = directions.W_dec[index].to(lens.device)
    add = torch.zeros(
        tokens.shape[0], tokens.shape[1], vector.shape[0], dtype=vector.dtype, device=lens.device
    )
    rows = slice(None) if positions is None else list(positions)
    add[:, rows] = alpha * vector
    order = lens.site_order(directions.site)
    with torch.no_grad():
        clean = lens.forward(tokens, RunPlan())
        steered = lens.forward(tokens, RunPlan(edits={directions.site: SiteEdit(add=add)}))
    change = steered.logits[:, -1] - clean.logits[:, -1]
    mean_change = change.mean(0)
    top = torch.topk(mean_change, top_k)
    bottom = torch.topk(-mean_change, top_k)

    def named(ids: Tensor, values: Tensor) -> list[tuple[str, float]]:
        if lens.model.tokenizer is None:
            return [(str(int(i)), float(v)) for i, v in zip(ids, values, strict=True)]
        return [
            (str(lens.model.to_single_str_token(int(i))), float(v))
            for i, v in zip(ids, values, strict=True)
        ]

    feature_change = {
        site: steered.features[site] - clean.features[site]
        for site in lens.sites
        if lens.site_order(site) > order
    }
    generations: list[str] = []
    if max_new_tokens > 0:
        generations = _generate(
            lens, tokens, directions.hook_out, alpha * vector, positions, max_new_tokens
        )
    return SteeringResult(
        alpha,
        change,
        named(top.indices, top.values),
        named(bottom.indices, -bottom.values),
        feature_change,
        generations,
    )


def _generate(
    lens: Lens,
    tokens: Tensor,
    hook: str,
    vector: Tensor,
    positions: Sequence[int] | None,
    max_new_tokens: int,
) -> list[str]:
    """Greedy generation with `vector` added at `hook` (at every position, or the given ones)."""

    def add(act: Tensor, hook: Any) -> Tensor:
        if positions is None:
            return act + vector
        act = act.clone()
        act[:, [p for p in positions if p < act.shape[1]]] += vector
        return act

    with lens.model.hooks(fwd_hooks=[(hook, add)]):
        out = lens.model.generate(
            tokens,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            verbose=False,
            use_past_kv_cache=False,
        )
    if lens.model.tokenizer is None:
        return [" ".join(str(int(t)) for t in row) for row in out]
    return [str(text) for text in lens.model.to_string(out[:, tokens.shape[1] :])]
