"""The zoo's word-level tokenizer, in Hugging Face format.

TransformerLens re-loads a tokenizer by its `name_or_path` to give it a BOS token, so a tokenizer
built in memory fails there; this one is always saved with `save_pretrained` and used through
`AutoTokenizer.from_pretrained(folder)`. It does not add BOS itself: TransformerLens prepends it
(`prepend_bos=True` by default), exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feature_lens.zoo.grammar import BOS, PAD, UNK, vocabulary


def token_ids() -> dict[str, int]:
    """Word -> token id, fixed by `grammar.vocabulary()` (so ids need no tokenizer file)."""
    return {word: i for i, word in enumerate(vocabulary())}


def save_tokenizer(folder: Path) -> None:
    """Build the word-level tokenizer and write it to `folder` (Hugging Face `save_pretrained`)."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(WordLevel(vocab=token_ids(), unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=BOS, unk_token=UNK, pad_token=PAD
    )
    saved: Any = wrapped  # save_pretrained's **kwargs are untyped
    saved.save_pretrained(str(folder))


def load_tokenizer(folder: Path) -> Any:
    """The tokenizer saved in `folder`, through `AutoTokenizer` (a `PreTrainedTokenizerFast`)."""
    from transformers import AutoTokenizer

    tokenizer_class: Any = AutoTokenizer
    return tokenizer_class.from_pretrained(str(folder))
