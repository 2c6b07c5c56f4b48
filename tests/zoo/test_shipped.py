"""The shipped zoo, measured again from its files: task accuracies and dictionary quality.

Nothing here reads the stored report: every number is recomputed by running the shipped model (and
its SAEs) on held-out prompts and held-out corpus tokens.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from feature_lens.zoo import (
    TASKS,
    ZOO_MODEL_NAME,
    default_zoo_dir,
    load_zoo_model,
    zoo_dictionary_dirs,
)
from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.dictionaries import load_dictionary
from feature_lens.zoo.metrics import dictionary_score, mean_loss, task_score
from feature_lens.zoo.tokenizer import token_ids

HOOKS = list(zoo_dictionary_dirs()) if (default_zoo_dir() / "model.json").is_file() else []


@pytest.fixture(scope="module")
def model() -> Any:
    return load_zoo_model()


@pytest.fixture(scope="module")
def held_out_tokens(model: Any) -> torch.Tensor:
    return corpus_tokens(128, seed=7, split="test", n_ctx=model.cfg.n_ctx)


@pytest.mark.parametrize("task", TASKS)
def test_task_accuracy_on_held_out_prompts(model: Any, task: str) -> None:
    score = task_score(model, task, 200, seed=5)
    assert score.accuracy >= 0.95, score
    assert score.logit_diff > 0 > score.corrupted_logit_diff, score


def test_model_learned_the_corpus(model: Any, held_out_tokens: torch.Tensor) -> None:
    loss = mean_loss(model, held_out_tokens)
    uniform = torch.log(torch.tensor(float(model.cfg.d_vocab))).item()
    assert loss < 0.5 * uniform


@pytest.mark.parametrize("hook", HOOKS)
def test_dictionary_quality(model: Any, held_out_tokens: torch.Tensor, hook: str) -> None:
    sae = load_dictionary(zoo_dictionary_dirs()[hook])
    assert sae.cfg.metadata.hook_name == hook
    assert sae.cfg.metadata.model_name == ZOO_MODEL_NAME
    score = dictionary_score(model, sae, held_out_tokens)
    assert score.fve >= 0.9, score
    assert score.dead_fraction < 0.1, score
    assert 1.0 <= score.l0 <= float(sae.cfg.k), score
    assert 0.0 <= score.delta_loss < 0.25, score
    assert score.loss_recovered > 0.8, score


def test_every_layer_has_a_residual_and_an_attention_output_sae(model: Any) -> None:
    expected = []
    for layer in range(model.cfg.n_layers):
        expected += [f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_resid_post"]
    assert expected == HOOKS


def test_tokenizer_and_bos(model: Any) -> None:
    ids = token_ids()
    tokens = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    assert tokens[0, 0].item() == ids["<bos>"]
    assert (tokens[0, 1:] != ids["<bos>"]).all()
    assert tokens[0, 1:].tolist() == [
        ids[w]
        for w in [
            "when",
            "mary",
            "and",
            "john",
            "went",
            "to",
            "the",
            "store",
            ",",
            "john",
            "gave",
            "a",
            "drink",
            "to",
        ]
    ]
    assert len(model.tokenizer) == model.cfg.d_vocab


def test_shipped_files_are_small_and_pickle_free() -> None:
    files = [p for p in default_zoo_dir().rglob("*") if p.is_file()]
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert sum(p.stat().st_size for p in weights) <= 20 * 2**20
    assert {p.suffix for p in files} <= {".json", ".safetensors", ".md"}
    build = json.loads((default_zoo_dir() / "build.json").read_text())
    assert build["model"] == json.loads((default_zoo_dir() / "model.json").read_text())
