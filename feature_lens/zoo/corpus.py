"""The zoo's training distribution: contexts of toy-English sentences with planted tasks.

A context is whole sentences drawn from `grammar.MIXTURE` packed one after another, the last one cut
where the context ends, so every context is exactly `n_ctx - 1` words (BOS makes `n_ctx` tokens).
Generation is seeded (`random.Random` seeded with a string, stable across runs and machines) and
needs no download.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import torch
from jaxtyping import Int
from torch import Tensor

from feature_lens.zoo.grammar import BOS, Split, sentence
from feature_lens.zoo.tokenizer import token_ids

DEFAULT_N_CTX = 48


def corpus_words(
    n: int, *, seed: int = 0, split: Split = "train", n_ctx: int = DEFAULT_N_CTX
) -> list[list[str]]:
    """`n` contexts as word lists, each `n_ctx - 1` words long (BOS not included)."""
    rng = random.Random(f"feature-lens-zoo:corpus:{split}:{seed}")
    contexts: list[list[str]] = []
    for _ in range(n):
        words: list[str] = []
        while len(words) < n_ctx - 1:
            words.extend(sentence(rng, split))
        contexts.append(words[: n_ctx - 1])
    return contexts


def corpus_texts(
    n: int, *, seed: int = 0, split: Split = "train", n_ctx: int = DEFAULT_N_CTX
) -> list[str]:
    """`n` texts of the training distribution (filler sentences mixed with the planted tasks).

    Each text is `n_ctx - 1` words, so with BOS it fills the model's context exactly. The "test"
    split holds prompts that never occur in "train" (see `grammar.split_of`).
    """
    return [" ".join(words) for words in corpus_words(n, seed=seed, split=split, n_ctx=n_ctx)]


def corpus_tokens(
    n: int, *, seed: int = 0, split: Split = "train", n_ctx: int = DEFAULT_N_CTX
) -> Int[Tensor, "n n_ctx"]:
    """The same contexts as `corpus_texts`, as token ids with BOS first, shape `[n, n_ctx]`."""
    ids = token_ids()
    rows = [
        [ids[BOS], *(ids[w] for w in words)]
        for words in corpus_words(n, seed=seed, split=split, n_ctx=n_ctx)
    ]
    return torch.tensor(rows, dtype=torch.long)


def corpus_batches(
    batch_size: int, *, seed: int = 0, split: Split = "train", n_ctx: int = DEFAULT_N_CTX
) -> Iterator[Int[Tensor, "batch n_ctx"]]:
    """An endless stream of token batches `[batch_size, n_ctx]` (BOS first), one seeded sequence."""
    ids = token_ids()
    rng = random.Random(f"feature-lens-zoo:stream:{split}:{seed}")
    while True:
        rows: list[list[int]] = []
        for _ in range(batch_size):
            row = [ids[BOS]]
            while len(row) < n_ctx:
                row.extend(ids[w] for w in sentence(rng, split))
            rows.append(row[:n_ctx])
        yield torch.tensor(rows, dtype=torch.long)
