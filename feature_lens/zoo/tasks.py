"""Planted tasks of the zoo corpus, as clean/corrupted prompt pairs with known answers.

The corrupted prompt is the minimal edit that flips the answer: the head noun's number
(agreement), the name of the second clause's subject (ioi), the token the repeat should copy
(induction), the type of the bracket that must be closed next (brackets). So at the final position
the clean answer is `correct` and the corrupted prompt's answer is `wrong`; the usual metric is
logit(correct) - logit(wrong) there.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Int
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.zoo import grammar
from feature_lens.zoo.grammar import BOS, Split
from feature_lens.zoo.tokenizer import token_ids

TASKS: tuple[str, ...] = ("agreement", "ioi", "induction", "brackets")

_GENERATORS: dict[str, Callable[[random.Random], tuple[list[str], str, list[str], str]]] = {
    "agreement": grammar.agreement,
    "ioi": grammar.ioi,
    "induction": grammar.induction,
    "brackets": grammar.brackets,
}


@dataclass(frozen=True)
class TaskPrompts:
    """`n` clean/corrupted prompt pairs of one task; all prompts have the same length `seq`.

    clean, corrupted: token ids `[n, seq]`, BOS first. correct, wrong: token ids `[n]` of the clean
    answer and the competing answer (the corrupted prompt's answer) at the last position.
    """

    task: str
    clean: Int[Tensor, "n seq"]
    corrupted: Int[Tensor, "n seq"]
    correct: Int[Tensor, " n"]
    wrong: Int[Tensor, " n"]
    texts: list[str]
    corrupted_texts: list[str]


def task_prompts(task: str, n: int, *, seed: int = 0, split: Split = "test") -> TaskPrompts:
    """Draw `n` prompt pairs of `task` (one of `TASKS`) from `split` ("test" = held out).

    Deterministic in (task, n, seed, split); the first `m` of `n` prompts equal those of a call
    with `m`. Test prompts never occur in the training corpus.
    """
    if task not in _GENERATORS:
        raise InputError(f"unknown zoo task {task!r}; choose one of {', '.join(TASKS)}")
    if n < 1:
        raise InputError(f"n must be at least 1, got {n}")
    rng = random.Random(f"feature-lens-zoo:task:{task}:{split}:{seed}")
    ids = token_ids()
    clean: list[list[int]] = []
    corrupted: list[list[int]] = []
    correct: list[int] = []
    wrong: list[int] = []
    texts: list[str] = []
    corrupted_texts: list[str] = []
    while len(clean) < n:
        prompt, answer, bad_prompt, bad_answer = _GENERATORS[task](rng)
        if grammar.split_of(prompt) != split:
            continue
        clean.append([ids[BOS], *(ids[w] for w in prompt)])
        corrupted.append([ids[BOS], *(ids[w] for w in bad_prompt)])
        correct.append(ids[answer])
        wrong.append(ids[bad_answer])
        texts.append(" ".join(prompt))
        corrupted_texts.append(" ".join(bad_prompt))
    return TaskPrompts(
        task=task,
        clean=torch.tensor(clean, dtype=torch.long),
        corrupted=torch.tensor(corrupted, dtype=torch.long),
        correct=torch.tensor(correct, dtype=torch.long),
        wrong=torch.tensor(wrong, dtype=torch.long),
        texts=texts,
        corrupted_texts=corrupted_texts,
    )
