"""The findings of docs/zoo.md, re-measured on the shipped files (by property, not by index)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens.zoo import load_zoo_model, task_prompts, zoo_dictionary_dirs
from feature_lens.zoo.dictionaries import load_dictionary
from feature_lens.zoo.findings import contrast_features
from feature_lens.zoo.tokenizer import token_ids


@pytest.fixture(scope="module")
def model() -> Any:
    return load_zoo_model()


def _sae(hook: str) -> Any:
    return load_dictionary(zoo_dictionary_dirs()[hook])


def test_a_plural_subject_feature_at_the_head_noun(model: Any) -> None:
    p = task_prompts("agreement", 200, seed=11)
    tokens = torch.cat([p.clean, p.corrupted])
    answers = torch.cat([p.correct, p.wrong])
    plural, singular = tokens[answers == token_ids()["are"]], tokens[answers == token_ids()["is"]]
    best = contrast_features(model, _sae("blocks.1.hook_resid_post"), plural, singular, position=2)
    assert best[0].fire_a >= 0.95
    assert best[0].fire_b <= 0.05


def test_a_duplicate_token_feature_in_layer_0_attention(model: Any) -> None:
    p = task_prompts("induction", 200, seed=11)
    second, first = p.clean, p.clean[:, :6]  # same token: repeated occurrence vs first occurrence
    best = contrast_features(model, _sae("blocks.0.hook_attn_out"), second, first)
    assert best[0].fire_a >= 0.95
    assert best[0].fire_b <= 0.1
