"""Interventions from the explorer's panel: scale, zero or clamp features and see what changes.

A target is a feature node `(site, index, pos)` (`pos` None: every position). The intervention
rewrites those features inside the spliced model (`SiteEdit.features`): at the target's site the
features are encoded from the (possibly already changed) activation, the targets are replaced —
`scale`: `f <- value * f`; `zero`: `f <- 0`; `clamp`: `f <- value` — and the site writes
`decode(f') + err`, with `err` the error term of that same activation, so only the edit changes
the output. Everything downstream is recomputed. With `freeze_attention`, every attention pattern
over the prompt's positions is held at the clean run's value (queries at generated positions still
attend freely).

Reported: the top next-token probabilities at the prompt's last position, clean and intervened,
with the logit change of each; and greedy continuations (no sampling), clean and intervened, with
the edit held at its positions (a target with `pos` None also applies at every generated position).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.lens import Lens, RunPlan, SiteEdit

Mode = Literal["scale", "zero", "clamp"]


class Target(BaseModel):
    """A feature node to intervene on."""

    model_config = ConfigDict(extra="forbid")
    site: str = Field(max_length=200)
    index: int = Field(ge=0)
    pos: int | None = Field(default=None, ge=0)


class InterventionRequest(BaseModel):
    """What the panel sends."""

    model_config = ConfigDict(extra="forbid")
    targets: list[Target] = Field(min_length=1, max_length=500)
    mode: Mode = "zero"
    value: float = Field(default=0.0, ge=-1e4, le=1e4)
    freeze_attention: bool = False
    max_new_tokens: int = Field(default=8, ge=0, le=32)
    top_k: int = Field(default=10, ge=1, le=50)


@dataclass
class TokenChange:
    """A token's probability before and after, and its logit change."""

    token: str
    clean_prob: float
    new_prob: float
    logit_change: float


@dataclass
class InterventionResult:
    """Top tokens of the clean and of the intervened run, and both greedy continuations."""

    clean_top: list[TokenChange]
    new_top: list[TokenChange]
    clean_logits: Tensor
    new_logits: Tensor
    clean_continuation: list[str] = field(default_factory=list[str])
    new_continuation: list[str] = field(default_factory=list[str])
    clean_text: str = ""
    new_text: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (logit vectors left out)."""

        def rows(items: list[TokenChange]) -> list[dict[str, Any]]:
            return [
                {
                    "token": t.token,
                    "clean": t.clean_prob,
                    "new": t.new_prob,
                    "logitChange": t.logit_change,
                }
                for t in items
            ]

        return {
            "cleanTop": rows(self.clean_top),
            "newTop": rows(self.new_top),
            "cleanContinuation": self.clean_continuation,
            "newContinuation": self.new_continuation,
            "cleanText": self.clean_text,
            "newText": self.new_text,
        }


def check_targets(lens: Lens, targets: Sequence[Target], n_pos: int) -> None:
    """InputError unless every target names a site of the Lens, a feature in range, a position."""
    for target in targets:
        if target.site not in lens.dictionaries:
            raise InputError(f"{target.site[:80]!r} is not a dictionary site of this Lens")
        d_sae = lens.dictionary(target.site).d_sae
        if target.index >= d_sae:
            raise InputError(f"feature {target.index} is out of range at {target.site!r} ({d_sae})")
        if target.pos is not None and target.pos >= n_pos:
            raise InputError(f"position {target.pos} is outside the prompt's {n_pos} tokens")


def _rewrite(mode: Mode, value: float) -> Callable[[Tensor], Tensor]:
    if mode == "scale":
        return lambda f: f * value
    if mode == "zero":
        return torch.zeros_like
    return lambda f: torch.full_like(f, value)


def feature_edits(targets: Sequence[Target], mode: Mode, value: float) -> dict[str, SiteEdit]:
    """One `SiteEdit` per site rewriting its targets (the module docstring says how)."""
    by_site: dict[str, list[Target]] = {}
    for target in targets:
        by_site.setdefault(target.site, []).append(target)
    rewrite = _rewrite(mode, value)

    def make(items: list[Target]) -> Callable[[Tensor], Tensor]:
        def edit(features: Tensor) -> Tensor:
            out = features.clone()
            for t in items:
                if t.pos is None:
                    out[..., t.index] = rewrite(features[..., t.index])
                else:
                    out[:, t.pos, t.index] = rewrite(features[:, t.pos, t.index])
            return out

        return edit

    return {site: SiteEdit(features=make(items)) for site, items in by_site.items()}


def pattern_hooks(lens: Lens) -> list[str]:
    """The attention-pattern hooks of the model, one per layer."""
    return [f"blocks.{layer}.attn.hook_pattern" for layer in range(int(lens.model.cfg.n_layers))]


@contextmanager
def frozen_attention(lens: Lens, patterns: dict[str, Tensor] | None) -> Generator[None]:
    """Within the block, attention patterns over the first `n` queries and keys are the recorded
    ones (`patterns`: hook -> `[batch, head, n, n]`); None freezes nothing."""
    if patterns is None:
        yield
        return

    def hold(pattern: Tensor, hook: Any) -> Tensor:
        clean = patterns[hook.name]
        n = clean.shape[-1]
        out = pattern.clone()
        out[..., :n, :n] = clean
        return out

    with lens.model.hooks(fwd_hooks=[(name, hold) for name in patterns]):
        yield


def _greedy(lens: Lens, tokens: Tensor, plan: RunPlan, steps: int) -> Tensor:
    """Greedy continuation `[batch, steps]` under `plan` (full recomputation at each step)."""
    current = tokens
    for _ in range(steps):
        if current.shape[1] >= int(lens.model.cfg.n_ctx):
            break
        logits = lens.forward(current, plan).logits[:, -1]
        current = torch.cat([current, logits.argmax(-1, keepdim=True)], 1)
    return current[:, tokens.shape[1] :]


def intervene(lens: Lens, tokens: Tensor, request: InterventionRequest) -> InterventionResult:
    """Run the intervention on prompt `tokens` `[1, pos]` (see the module docstring)."""
    if tokens.ndim != 2 or tokens.shape[0] != 1:
        raise InputError(f"intervene takes one prompt [1, pos], got {tuple(tokens.shape)}")
    check_targets(lens, request.targets, int(tokens.shape[1]))
    edits = feature_edits(request.targets, request.mode, request.value)
    with torch.no_grad():
        clean_run = lens.forward(tokens, RunPlan(record_hooks=pattern_hooks(lens)))
        patterns = (
            {name: clean_run.hooks[name] for name in pattern_hooks(lens)}
            if request.freeze_attention
            else None
        )
        with frozen_attention(lens, patterns):
            new_logits = lens.forward(tokens, RunPlan(edits=edits)).logits[0, -1].float()
            new_tokens = _greedy(lens, tokens, RunPlan(edits=edits), request.max_new_tokens)
        clean_logits = clean_run.logits[0, -1].float()
        clean_tokens = _greedy(lens, tokens, RunPlan(), request.max_new_tokens)
    clean_probs, new_probs = torch.softmax(clean_logits, -1), torch.softmax(new_logits, -1)
    change = new_logits - clean_logits

    def top(probs: Tensor) -> list[TokenChange]:
        ids = torch.topk(probs, min(request.top_k, probs.numel())).indices
        return [
            TokenChange(
                _token(lens, int(i)),
                float(clean_probs[i]),
                float(new_probs[i]),
                float(change[i]),
            )
            for i in ids
        ]

    return InterventionResult(
        top(clean_probs),
        top(new_probs),
        clean_logits,
        new_logits,
        [_token(lens, int(t)) for t in clean_tokens[0]],
        [_token(lens, int(t)) for t in new_tokens[0]],
        _text(lens, clean_tokens[0]),
        _text(lens, new_tokens[0]),
    )


def _text(lens: Lens, ids: Tensor) -> str:
    if lens.model.tokenizer is None:
        return " ".join(str(int(t)) for t in ids)
    return str(lens.model.to_string(ids)) if ids.numel() else ""


def _token(lens: Lens, token_id: int) -> str:
    if lens.model.tokenizer is None:
        return str(token_id)
    return str(lens.model.to_single_str_token(token_id))
