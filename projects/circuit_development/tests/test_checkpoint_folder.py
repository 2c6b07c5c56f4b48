"""Checkpoint folders: the zoo's own training loop writes checkpoints in both layouts, and each
loads back to a model with the same logits as the one saved; bad folders fail with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens.errors import LoadingError
from feature_lens.zoo import corpus_tokens
from feature_lens.zoo.model import TOKENIZER_DIR, ZooModelConfig, save_model
from feature_lens.zoo.tokenizer import load_tokenizer, save_tokenizer
from feature_lens.zoo.train import ModelTrainingConfig, train_model
from projects.circuit_development.checkpoint_folder import CheckpointFolder, export_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ckpt")
    zoo_root, flat_root = root / "zoo", root / "flat"
    save_tokenizer(root / TOKENIZER_DIR)
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    tokens = corpus_tokens(4, split="test")
    logits: dict[int, torch.Tensor] = {}
    config = ZooModelConfig()

    def on_checkpoint(step: int, model: Any) -> None:
        with torch.no_grad():
            logits[step] = model(tokens).clone()
        save_model(model, config, zoo_root / f"step_{step:05d}")
        save_tokenizer(zoo_root / f"step_{step:05d}" / TOKENIZER_DIR)
        export_checkpoint(model, flat_root, step)

    training = ModelTrainingConfig(steps=4, batch_size=4, warmup_steps=1)
    train_model(
        config, training, tokenizer, checkpoint_steps=(0, 2, 4), on_checkpoint=on_checkpoint
    )
    return {"zoo": zoo_root, "flat": flat_root, "tokens": tokens, "logits": logits}


@pytest.mark.parametrize("layout", ["zoo", "flat"])
def test_checkpoints_load_back_exactly(trained: dict[str, Any], layout: str) -> None:
    folder = CheckpointFolder.open(trained[layout])
    assert folder.steps == [0, 2, 4]
    for step in folder.steps:
        model = folder.load(step)
        with torch.no_grad():
            got = model(trained["tokens"])
        assert torch.equal(got, trained["logits"][step])
    # training moved the weights: the checkpoints differ
    assert not torch.equal(trained["logits"][0], trained["logits"][4])


def test_bad_folders_fail_clearly(tmp_path: Path, trained: dict[str, Any]) -> None:
    with pytest.raises(LoadingError, match="does not exist"):
        CheckpointFolder.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadingError, match="no checkpoints in"):
        CheckpointFolder.open(tmp_path / "empty")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "step_3.pt").write_bytes((trained["flat"] / "step_2.safetensors").read_bytes())
    with pytest.raises(LoadingError, match=r"config\.json"):
        CheckpointFolder.open(lonely)
    folder = CheckpointFolder.open(trained["flat"])
    with pytest.raises(LoadingError, match="no checkpoint for step 7"):
        folder.load(7)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    fields = json.loads((trained["flat"] / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**fields, "d_mlp": fields["d_mlp"] * 2}))
    (wrong / "step_0.safetensors").write_bytes(
        (trained["flat"] / "step_0.safetensors").read_bytes()
    )
    with pytest.raises(LoadingError, match="does not match"):
        CheckpointFolder.open(wrong).load(0)
