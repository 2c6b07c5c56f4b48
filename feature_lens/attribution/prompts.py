"""Prompt sets: clean prompts, optional corrupted counterparts, and per-prompt answer tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.lens import Lens


@dataclass
class PromptSet:
    """Prompts of equal length, optionally with corrupted prompts of the same shape.

    Attributes:
        clean: token ids `[n, pos]`.
        corrupted: token ids `[n, pos]`, or None.
        answers: per-prompt token ids the metric reads, `[n, k]` (e.g. correct and wrong answer),
            or None.
    """

    clean: Int[Tensor, "n pos"]
    corrupted: Int[Tensor, "n pos"] | None = None
    answers: Int[Tensor, "n k"] | None = None

    @classmethod
    def build(
        cls,
        lens: Lens,
        prompts: str | Sequence[str] | Tensor,
        corrupted: str | Sequence[str] | Tensor | None = None,
        answers: Sequence[Sequence[int]] | Tensor | None = None,
    ) -> PromptSet:
        """Tokenize and check: corrupted prompts must match the clean ones in count and length."""
        clean = lens.to_tokens(prompts)
        corrupt = None if corrupted is None else lens.to_tokens(corrupted)
        if corrupt is not None and corrupt.shape != clean.shape:
            raise InputError(
                f"corrupted prompts have shape {tuple(corrupt.shape)} but the clean prompts have "
                f"{tuple(clean.shape)} [prompts, tokens]; give one corrupted prompt per clean prompt, "
                "of the same token length"
            )
        answer_tensor = None
        if answers is not None:
            answer_tensor = torch.as_tensor(answers, dtype=torch.long, device=clean.device)
            if answer_tensor.ndim == 1:
                answer_tensor = answer_tensor.unsqueeze(-1)
            if answer_tensor.shape[0] != clean.shape[0]:
                raise InputError(
                    f"{answer_tensor.shape[0]} answer rows for {clean.shape[0]} prompts; give one per prompt"
                )
            d_vocab = int(lens.model.cfg.d_vocab)
            if answer_tensor.min() < 0 or answer_tensor.max() >= d_vocab:
                raise InputError(f"answer token ids must lie in [0, {d_vocab})")
        return cls(clean, corrupt, answer_tensor)

    @classmethod
    def from_task(
        cls, lens: Lens, task: str, n: int, *, seed: int = 0, split: str = "test"
    ) -> PromptSet:
        """`n` clean/corrupted prompt pairs of a planted task of the embedded model
        (`feature_lens.zoo.TASKS`), with answers `[correct, wrong]` per prompt (for `LogitDiff`).
        Deterministic in (task, n, seed, split); `split="test"` prompts are held out of training."""
        from feature_lens.zoo import task_prompts

        pairs = task_prompts(task, n, seed=seed, split=split)  # type: ignore[arg-type]
        answers = torch.stack([pairs.correct, pairs.wrong], dim=1)
        return cls.build(lens, pairs.clean, pairs.corrupted, answers)

    def __len__(self) -> int:
        return int(self.clean.shape[0])

    @property
    def n_pos(self) -> int:
        """Tokens per prompt."""
        return int(self.clean.shape[1])
