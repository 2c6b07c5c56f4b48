"""One loading vocabulary across commands, errors in CLI spelling, a fast `--help`, and dashboards
over local corpora (validated before the model loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feature_lens.cli import build_parser, main
from tests.conftest import make_sae
from tests.test_loading import _save_gpt2_folder

#: each command that loads a Lens, with the arguments it requires
LENS_COMMANDS = {
    "info": [],
    "attribute": ["--out", "g.json"],
    "dashboard": ["--out", "site"],
    "steer": ["--steer", "h:v.npy", "--alpha", "1", "--prompt", "w1"],
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vocab")
    _save_gpt2_folder(root / "gpt2-copy", root / "tok")
    paths = {"model": root / "gpt2-copy"}
    for layer in (0, 1):
        sae = make_sae(
            "standard", 32, f"blocks.{layer}.hook_resid_post", seed=layer, model_name="gpt2"
        )
        sae.save_model(root / f"sae{layer}")
        paths[f"sae{layer}"] = root / f"sae{layer}"
    return paths


@pytest.mark.parametrize("command", list(LENS_COMMANDS))
def test_every_lens_command_takes_the_same_vocabulary(command: str) -> None:
    args = build_parser(only=command).parse_args(
        [
            command,
            "--model", "m", "--model-name", "gpt2",
            "--sae", "a", "--sae", "b",
            "--direction", "h:x.npy", "--direction", "h:y.npy",
            "--device", "cpu", "--dtype", "float64", "--batch-size", "3",
            "--no-fold-ln", "--center-writing-weights", "--no-center-unembed",
            "--no-fold-value-biases", "--refactor-factored-attn-matrices",
            "--no-check-model-name", "--gradient-mode", "detached",
            *LENS_COMMANDS[command],
        ]
    )  # fmt: skip
    assert args.sae == ["a", "b"]  # dashboard used to keep only the last
    assert args.direction == ["h:x.npy", "h:y.npy"]
    assert (args.device, args.dtype, args.batch_size, args.model_name) == (
        "cpu",
        "float64",
        3,
        "gpt2",
    )
    assert (args.fold_ln, args.center_writing_weights, args.center_unembed) == (False, True, False)
    assert args.refactor_factored_attn_matrices
    assert not args.check_model_name


def test_batch_size_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["info", "--batch-size", "0"])
    assert "argument --batch-size: expected a positive integer, got '0'" in capsys.readouterr().err


def test_name_check_errors_use_cli_flags(
    folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["info", "--model", str(folders["model"]), "--sae", str(folders["sae0"])]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "--no-check-model-name" in err
    assert "--model-name 'gpt2'" in err
    assert "check_model_name" not in err
    assert "model_name=" not in err
    assert main([*base, "--model-name", "gpt2"]) == 0
    assert "model gpt2:" in capsys.readouterr().out
    assert main([*base, "--no-check-model-name"]) == 0
    assert "model gpt2-copy:" in capsys.readouterr().out


def test_processing_flags_reach_the_model(folders: dict[str, Path]) -> None:
    from feature_lens.cli.common import load_lens

    parser = build_parser(only="info")
    model = ["info", "--model", str(folders["model"])]
    assert load_lens(parser.parse_args(model)).model.cfg.normalization_type == "LNPre"
    assert (
        load_lens(parser.parse_args([*model, "--no-fold-ln"])).model.cfg.normalization_type == "LN"
    )


def test_dashboard_keeps_every_sae_and_reads_jsonl(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "corpus.jsonl"
    long = " ".join(f"w{i % 40}" for i in range(40))  # longer than the context (16): cut
    prompts.write_text("\n".join(json.dumps({"text": t}) for t in ["w1 w2 w3", long, "w4 w5"]))
    out = tmp_path / "site"
    args = [
        "dashboard", "--model", str(folders["model"]), "--model-name", "gpt2",
        "--sae", str(folders["sae0"]), "--sae", str(folders["sae1"]),
        "--prompts", str(prompts), "--top-k", "2", "--batch-size", "2",
        "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2  # the corpus passes
    index = (out / "index.html").read_text()
    assert "blocks.0.hook_resid_post" in index
    assert "blocks.1.hook_resid_post" in index
    assert main([*args[:-2], "--no-chunk", "--out", str(tmp_path / "b")]) == 1
    assert "line 2 of corpus.jsonl is 41 tokens" in capsys.readouterr().err


def test_dashboard_checks_prompts_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('"fine"\n{"text": \n')
    missing_model = str(tmp_path / "no-model-here")
    assert (
        main(
            [
                "dashboard",
                "--model",
                missing_model,
                "--prompts",
                str(bad),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )
    assert "line 2 of p.jsonl is not valid JSON" in capsys.readouterr().err
    good = tmp_path / "p.txt"
    good.write_text("w1\n")
    args = [
        "dashboard",
        "--model",
        missing_model,
        "--prompts",
        str(good),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*args, "--sae", str(tmp_path / "no-sae")]) == 1
    assert "--sae" in capsys.readouterr().err


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )


def test_help_and_version_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from feature_lens.cli import main\n"
        "for argv in (['--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "import feature_lens\n"
        "print(feature_lens.__version__, sorted(m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules))\n"
    )
    out = _run(code).stdout
    assert "usage: feature-lens" in out
    assert out.strip().endswith("0.2.0 []")
    assert "feature-lens 0.2.0" in out


def test_package_root_exports_lazily() -> None:
    import feature_lens

    assert sorted(feature_lens.__all__) == sorted(["__version__", *feature_lens._EXPORTS])  # pyright: ignore[reportPrivateUsage]
    for name in feature_lens.__all__:
        assert getattr(feature_lens, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        feature_lens.nope  # type: ignore[attr-defined]  # noqa: B018


def test_prompt_options_are_checked_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = ["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "g.json")]
    assert (
        main(["attribute", *missing, "--prompt", "a", "--corrupted", "b", "--corrupted", "c"]) == 1
    )
    assert "2 --corrupted for 1 --prompt" in capsys.readouterr().err
    assert main(["attribute", *missing]) == 1
    assert "give prompts with --prompt" in capsys.readouterr().err
    assert (
        main(["dashboard", *missing[:2], "--prompts", str(tmp_path), "--out", str(tmp_path / "d")])
        == 1
    )
    assert "not a Hugging Face datasets folder" in capsys.readouterr().err


def test_undecodable_prompt_bytes_are_a_clear_error(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A prompt argument with invalid UTF-8 reaches Python as a lone surrogate (surrogateescape).
    args = ["attribute", "--model", str(folders["model"]), "--model-name", "gpt2"]
    assert main([*args, "--prompt", "w1 \udcff", "--out", str(tmp_path / "g.json")]) == 1
    assert "prompt 0 contains a lone surrogate" in capsys.readouterr().err
