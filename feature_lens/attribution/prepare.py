"""Per-prompt states: the one public way to get what the attribution kernels work on.

`prompt_states(lens, prompts, baseline)` runs the clean prompts once and the baseline once, and
splits them into one `PromptState` per prompt (tokens `[1, pos]`, answers, clean values and the
prompt's baseline values). `prompt_batch` keeps them together as one state of every prompt, for
the per-row kernels (`gradient_row_edges`, `direct_row_edges`).
"""

from __future__ import annotations

from jaxtyping import Int
from torch import Tensor

from feature_lens.attribution.baselines import BaselineKind, baseline_values, node_values
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import PromptState
from feature_lens.errors import InputError
from feature_lens.lens import Lens

BASELINES: tuple[BaselineKind, ...] = ("corrupted", "zero", "mean")


def default_baseline(prompts: PromptSet) -> BaselineKind:
    """ "corrupted" when the prompt set has corrupted prompts, else "zero"."""
    return "corrupted" if prompts.corrupted is not None else "zero"


def prompt_states(
    lens: Lens,
    prompts: PromptSet,
    baseline: BaselineKind | None = None,
    *,
    mean_tokens: Int[Tensor, "m pos"] | None = None,
) -> list[PromptState]:
    """One `PromptState` per prompt, with `baseline` values (default: `default_baseline`)."""
    kind = baseline or default_baseline(prompts)
    if kind not in BASELINES:
        raise InputError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    base = baseline_values(lens, prompts, kind, mean_tokens=mean_tokens)
    clean = node_values(lens, prompts.clean)
    n = len(prompts)
    per_prompt = base.embeddings.shape[0] == n and n > 1
    return [
        PromptState(
            prompts.clean[i : i + 1],
            None if prompts.answers is None else prompts.answers[i : i + 1],
            clean.row(i),
            base.row(i) if per_prompt else base.row(0),
        )
        for i in range(n)
    ]


def prompt_batch(
    lens: Lens,
    prompts: PromptSet,
    baseline: BaselineKind | None = None,
    *,
    mean_tokens: Int[Tensor, "m pos"] | None = None,
) -> PromptState:
    """One `PromptState` holding every prompt of `prompts` as a row (tokens `[n, pos]`); its
    `row(i)` equals `prompt_states(...)[i]`."""
    kind = baseline or default_baseline(prompts)
    if kind not in BASELINES:
        raise InputError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    base = baseline_values(lens, prompts, kind, mean_tokens=mean_tokens)
    return PromptState(prompts.clean, prompts.answers, node_values(lens, prompts.clean), base)
