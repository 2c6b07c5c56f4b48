"""The offline real-model route of README.md and docs/loading.md runs as written, on folders of the
same shapes (`save_pretrained` + `save_model`) with random weights: a 9-layer GPT-2 folder named
`gpt2` and an SAE trained on "gpt2-small" at blocks.8.hook_resid_pre named `sae-8`."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from feature_lens.cli import main
from tests.conftest import WORDS, make_sae, make_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def _offline_commands(doc: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / doc).read_text(), re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("feature-lens") and "./gpt2" in line]


@pytest.mark.parametrize("doc", ["README.md", "docs/loading.md"])
def test_offline_route_runs_as_written(
    doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=9, n_embd=16, n_head=4, n_positions=16, vocab_size=len(WORDS) + 2)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    make_tokenizer(tmp_path / "gpt2")
    sae = make_sae("standard", 16, "blocks.8.hook_resid_pre", model_name="gpt2-small")
    sae.save_model(tmp_path / "sae-8")
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"text": " ".join(WORDS[i : i + 6])}) for i in range(0, 30, 3))
    )
    monkeypatch.chdir(tmp_path)
    commands = _offline_commands(doc)
    assert len(commands) == 2
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv[0] == "dashboard":
            argv.append("--no-progress")
        assert main(argv) == 0, capsys.readouterr().err
    assert "blocks.8.hook_resid_pre" in (tmp_path / "gpt2-dash" / "index.html").read_text()
