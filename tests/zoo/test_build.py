"""Rebuilding a zoo: deterministic from the seed, atomic, never overwrites unasked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from feature_lens.cli import main
from feature_lens.errors import OutputExistsError
from feature_lens.outputs import MARKER
from feature_lens.zoo import load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.build import ZooBuildConfig, build_zoo
from feature_lens.zoo.dictionaries import DictionaryTrainingConfig
from feature_lens.zoo.model import ZooModelConfig
from feature_lens.zoo.train import ModelTrainingConfig, train_model

TINY = ZooBuildConfig(
    model=ZooModelConfig(n_layers=1, d_model=16, n_heads=2, d_mlp=32, n_ctx=20),
    training=ModelTrainingConfig(steps=6, batch_size=4, warmup_steps=2),
    dictionaries=DictionaryTrainingConfig(
        expansion=2, k=4, n_rows=1024, total_samples=1024, batch_size=128
    ),
    seed=3,
)


def _build(out: Path, config: ZooBuildConfig = TINY, **kwargs: bool) -> None:
    build_zoo(out, config, report_prompts=4, report_contexts=4, **kwargs)


def _weights(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))
    }


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    _build(tmp_path / "a")
    _build(tmp_path / "b")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert len(a) == 1 + 2  # model + attn_out and resid SAEs of the one layer
    assert a == b
    threads = torch.get_num_threads()
    torch.set_num_threads(TINY.threads)  # the weights depend on the thread count
    try:
        other, _ = train_model(TINY.model, TINY.training, seed=4)
        same, _ = train_model(TINY.model, TINY.training, seed=3)
    finally:
        torch.set_num_threads(threads)
    reloaded = load_zoo_model(tmp_path / "a").state_dict()
    assert all(torch.equal(reloaded[k], v) for k, v in same.named_parameters())
    assert not torch.equal(other.W_E, same.W_E)
    # the rebuilt folder loads through the public API
    model = load_zoo_model(tmp_path / "a")
    assert model.cfg.n_layers == 1
    assert list(zoo_dictionary_dirs(tmp_path / "a")) == [
        "blocks.0.hook_attn_out",
        "blocks.0.hook_resid_post",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_report_command_recomputes_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _build(tmp_path / "z")
    args = ["zoo", "report", str(tmp_path / "z"), "--prompts", "4", "--contexts", "4", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["tasks"]) == {"agreement", "ioi", "induction", "brackets"}
    assert list(report["dictionaries"]) == ["blocks.0.hook_attn_out", "blocks.0.hook_resid_post"]
    assert main(["zoo", "report", str(tmp_path / "missing")]) == 1


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        _build(out)
    assert (out / "mine.txt").read_text() == "keep"
    assert main(["zoo", "train", str(out)]) == 1
    # Not a feature-lens output: --overwrite refuses to delete it too.
    with pytest.raises(OutputExistsError, match="not written by feature-lens"):
        _build(out, overwrite=True)
    assert (out / "mine.txt").read_text() == "keep"
    (out / MARKER).write_text("{}")
    _build(out, overwrite=True)
    assert not (out / "mine.txt").exists()
    assert (out / "model.safetensors").is_file()
    assert (out / MARKER).is_file()
