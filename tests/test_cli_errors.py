"""Bad input on the command line: every command over a catalogue of bad inputs ends in one line on
stderr, a nonzero status and no traceback (an exception escaping `main` fails the test)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from feature_lens.cli import main
from feature_lens.cli.messages import terminal_text
from tests.conftest import make_sae

ROOT = Path(__file__).resolve().parents[1]
HOOK = "blocks.1.hook_resid_post"
D_MODEL = 64  # the embedded model's width


class Evil:
    """Unpickling this would run code; no loader may do it."""

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.system, ("touch pwned",))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: PLR0915 - one bad file each
    root = tmp_path_factory.mktemp("bad")
    f: dict[str, Path] = {"root": root}
    f["dir"] = root / "a-folder"
    f["dir"].mkdir()
    f["user_dir"] = root / "user-folder"
    f["user_dir"].mkdir()
    (f["user_dir"] / "notes.txt").write_text("mine")
    f["file"] = root / "exists.json"
    f["file"].write_text("{}")
    f["text"] = root / "notes.txt"
    f["text"].write_text("just some words\n")
    vec = torch.randn(2, D_MODEL)
    f["good_pt"] = root / "good.pt"
    torch.save(vec, f["good_pt"])
    f["pickle_pt"] = root / "pickle.pt"
    torch.save({"v": vec, "evil": Evil()}, f["pickle_pt"])
    f["old_pickle_pt"] = root / "old.pt"
    f["old_pickle_pt"].write_bytes(pickle.dumps(Evil()))
    f["text_pt"] = root / "text.pt"
    f["text_pt"].write_text("0.1 0.2 0.3\n")
    f["text_npy"] = root / "text.npy"
    f["text_npy"].write_text("0.1 0.2 0.3\n")
    f["object_npy"] = root / "object.npy"
    np.save(f["object_npy"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["empty_st"] = root / "empty.safetensors"
    save_file({}, str(f["empty_st"]))
    f["truncated_st"] = root / "truncated.safetensors"
    save_file({"v": vec}, str(f["truncated_st"]))
    f["truncated_st"].write_bytes(f["truncated_st"].read_bytes()[:40])
    f["nan_npy"] = root / "nan.npy"
    np.save(f["nan_npy"], np.full((1, D_MODEL), np.nan, dtype=np.float32))
    f["zero_npy"] = root / "zero.npy"
    np.save(f["zero_npy"], np.zeros((1, D_MODEL), dtype=np.float32))
    f["wide_npy"] = root / "wide.npy"
    np.save(f["wide_npy"], np.ones((1, D_MODEL + 3), dtype=np.float32))
    f["txt_suffix"] = root / "vec.txt"
    f["txt_suffix"].write_text("1 2 3")
    f["garbage_json"] = root / "garbage.json"
    f["garbage_json"].write_text("{not json")
    f["missing"] = root / "missing"
    sae = make_sae("standard", D_MODEL, HOOK, d_sae=16, seed=0, model_name="")
    sae.save_model(root / "nan-sae")
    weights = root / "nan-sae" / "sae_weights.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(weights)
    tensors["W_dec"] = torch.full_like(tensors["W_dec"], float("nan"))
    save_file(tensors, str(weights))
    f["nan_sae"] = root / "nan-sae"
    sae.save_model(root / "escape-sae")
    cfg_path = root / "escape-sae" / "cfg.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["metadata"]["hook_name"] = "blocks.1.hook_\x1b]0;pwned\x07\x1b[2Jresid_post"
    cfg_path.write_text(json.dumps(cfg))
    f["escape_sae"] = root / "escape-sae"
    _prompt_and_graph_files(root, f)
    return f


def _prompt_and_graph_files(root: Path, f: dict[str, Path]) -> None:
    """Bad prompt files, and graph files: a real graph (from `attribute`) with one field broken."""
    f["prompts_bad_json"] = root / "prompts.json"
    f["prompts_bad_json"].write_text('["a", "b"')
    f["prompts_bad_utf8"] = root / "prompts.txt"
    f["prompts_bad_utf8"].write_bytes(b"the cat\n\xff\xfe sat\n")
    f["prompts_empty"] = root / "empty.txt"
    f["prompts_empty"].write_text("\n\n")
    f["deep_json"] = root / "deep.json"
    f["deep_json"].write_text("[" * 100_000 + "]" * 100_000)
    good = root / "graphs" / "good.json"
    good.parent.mkdir()
    args = ["attribute", "--task", "ioi", "-n", "2", "--method", "direct", "--max-nodes", "6"]
    assert main([*args, "--no-edges", "--out", str(good)]) == 0
    data = json.loads(good.read_text())
    nodes = data["nodes"]
    broken: dict[str, Callable[[dict[str, Any]], None]] = {
        "negative_pos": lambda d: d["nodes"]["pos"].__setitem__(0, -1),
        "duplicate_node": lambda d: [d["nodes"][k].__setitem__(1, d["nodes"][k][0]) for k in nodes],
        "no_metric": lambda d: d["nodes"]["kind"].__setitem__(-1, "feature"),
        "nan_setting": lambda d: d["settings"].__setitem__("metric_clean", float("nan")),
        "wrong_version": lambda d: d.__setitem__("version", 99),
    }
    for name, breaker in broken.items():
        copy = json.loads(json.dumps(data))
        breaker(copy)
        f[f"graph_{name}"] = good.with_name(f"{name}.json")
        f[f"graph_{name}"].write_text(json.dumps(copy))
    f["graph_no_tensors"] = good.with_name("no_tensors.json")
    f["graph_no_tensors"].write_text(json.dumps({**data, "tensors": {**data["tensors"],
                                                 "file": "gone.safetensors"}}))  # fmt: skip


def dr(hook: str, key: str) -> Callable[[dict[str, Path]], list[str]]:
    return lambda f: ["info", "--direction", f"{hook}:{f[key]}"]


# (id, argv builder, a piece of the expected message)
CATALOGUE: list[tuple[str, Callable[[dict[str, Path]], list[str]], str]] = [
    ("unknown command", lambda f: ["frobnicate"], "unknown command"),
    ("unknown option", lambda f: ["info", "--frob"], "unrecognized arguments"),
    ("info bad dtype", lambda f: ["info", "--dtype", "int7"], "invalid choice"),
    ("info missing model", lambda f: ["info", "--model", str(f["missing"])], "missing"),
    ("info model is a text file", lambda f: ["info", "--model", str(f["text"])], "notes.txt"),
    ("info missing sae", lambda f: ["info", "--sae", str(f["missing"])], "missing"),
    ("info sae is a file", lambda f: ["info", "--sae", str(f["text"])], "notes.txt"),
    ("info escape hook", lambda f: ["info", "--sae", str(f["escape_sae"])], "\\x1b"),
    ("direction no colon", lambda f: ["info", "--direction", "nohook"], "HOOK:FILE"),
    ("direction missing", dr(HOOK, "missing"), "no direction file"),
    ("direction pickle .pt", dr(HOOK, "pickle_pt"), "never unpickles"),
    ("direction old pickle", dr(HOOK, "old_pickle_pt"), "not a torch.save file"),
    ("direction text .pt", dr(HOOK, "text_pt"), "not a torch.save file"),
    ("direction text .npy", dr(HOOK, "text_npy"), "not a .npy file"),
    ("direction object .npy", dr(HOOK, "object_npy"), "never loads"),
    ("direction empty st", dr(HOOK, "empty_st"), "holds no tensors"),
    ("direction truncated st", dr(HOOK, "truncated_st"), "not a valid safetensors"),
    ("direction nan", dr(HOOK, "nan_npy"), "non-finite"),
    ("direction zero", dr(HOOK, "zero_npy"), "zero norm"),
    ("direction wrong width", dr(HOOK, "wide_npy"), "67"),
    ("direction unknown suffix", dr(HOOK, "txt_suffix"), "unknown suffix"),
    ("direction unknown hook", dr("blocks.9.hook_nope", "good_pt"), "blocks.9.hook_nope"),
    ("zoo no subcommand", lambda f: ["zoo"], "required"),
    ("zoo train out is cwd", lambda f: ["zoo", "train", "."], "current directory"),
    ("zoo train out is a parent", lambda f: ["zoo", "train", ".."], "current directory"),
    ("zoo train out is a file", lambda f: ["zoo", "train", str(f["file"])], "is a file"),
    ("zoo train exists", lambda f: ["zoo", "train", str(f["dir"])], "--overwrite"),
    (
        "zoo train overwrite user folder",
        lambda f: ["zoo", "train", str(f["user_dir"]), "--overwrite"],
        "not written by feature-lens",
    ),
    ("zoo train threads", lambda f: ["zoo", "train", "--threads", "0"], "--threads"),
    ("zoo report missing", lambda f: ["zoo", "report", str(f["missing"])], "missing"),
    ("zoo report a file", lambda f: ["zoo", "report", str(f["text"])], "notes.txt"),
    ("attribute no out", lambda f: ["attribute", "--task", "ioi"], "--out"),
    (
        "attribute out is a folder",
        lambda f: ["attribute", "--task", "ioi", "--out", str(f["dir"])],
        "is a folder",
    ),
    (
        "attribute out exists",
        lambda f: ["attribute", "--task", "ioi", "--out", str(f["file"])],
        "--overwrite",
    ),
    ("attribute no prompts", lambda f: ["attribute", "--out", str(f["missing"])], "--prompt"),
    (
        "attribute unknown task",
        lambda f: ["attribute", "--task", "nope", "--out", str(f["missing"])],
        "nope",
    ),
    (
        "attribute multi-token answer",
        lambda f: [
            "attribute",
            "--prompt",
            "the cat",
            "--correct",
            "the cat sat",
            "--out",
            str(f["missing"]),
        ],
        "single-token",
    ),
    (
        "attribute bad method",
        lambda f: ["attribute", "--task", "ioi", "--method", "magic", "--out", str(f["missing"])],
        "invalid choice",
    ),
    (
        "attribute n-prompts not a number",
        lambda f: ["attribute", "--task", "ioi", "-n", "many", "--out", str(f["missing"])],
        "invalid int",
    ),
    ("dashboard out is cwd", lambda f: ["dashboard", "--out", "."], "current directory"),
    ("dashboard out is a file", lambda f: ["dashboard", "--out", str(f["file"])], "is a file"),
    (
        "dashboard overwrite user folder",
        lambda f: ["dashboard", "--out", str(f["user_dir"]), "--overwrite"],
        "not written by feature-lens",
    ),
    (
        "dashboard missing prompts",
        lambda f: ["dashboard", "--out", str(f["missing"]), "--prompts", str(f["missing"])],
        "missing",
    ),
    (
        "dashboard missing graph",
        lambda f: [
            "dashboard",
            "--out",
            str(f["missing"]),
            "--graph",
            str(f["missing"]),
            "--n-prompts",
            "8",
            "--no-progress",
        ],
        "missing",
    ),
    (
        "dashboard garbage graph",
        lambda f: [
            "dashboard",
            "--out",
            str(f["missing"]),
            "--graph",
            str(f["garbage_json"]),
            "--n-prompts",
            "8",
            "--no-progress",
        ],
        "garbage.json",
    ),
    (
        "dashboard nan sae",
        lambda f: [
            "dashboard",
            "--out",
            str(f["missing"]),
            "--sae",
            str(f["nan_sae"]),
            "--n-prompts",
            "8",
            "--no-task",
            "--no-progress",
        ],
        "non-finite",
    ),
    (
        "dashboard unknown feature",
        lambda f: [
            "dashboard",
            "--out",
            str(f["missing"]),
            "--features",
            f"{HOOK}:99999",
            "--n-prompts",
            "8",
            "--no-task",
            "--no-progress",
        ],
        "99999",
    ),
    (
        "steer index out of range",
        lambda f: [
            "steer",
            "--steer",
            f"{HOOK}:{f['good_pt']}",
            "--alpha",
            "1",
            "--prompt",
            "the cat",
            "--index",
            "5",
        ],
        "out of range",
    ),
    (
        "steer negative index",
        lambda f: [
            "steer",
            "--steer",
            f"{HOOK}:{f['good_pt']}",
            "--alpha",
            "1",
            "--prompt",
            "the cat",
            "--index",
            "-1",
        ],
        "out of range",
    ),
    (
        "steer past the context",
        lambda f: [
            "steer",
            "--steer",
            f"{HOOK}:{f['good_pt']}",
            "--alpha",
            "1",
            "--prompt",
            "the cat",
            "--generate",
            "100000",
        ],
        "context",
    ),
    (
        "steer pickle",
        lambda f: ["steer", "--steer", f"{HOOK}:{f['pickle_pt']}", "--alpha", "1", "--prompt", "a"],
        "never unpickles",
    ),
    (
        "steer alpha not a number",
        lambda f: [
            "steer",
            "--steer",
            f"{HOOK}:{f['good_pt']}",
            "--alpha",
            "lots",
            "--prompt",
            "a",
        ],
        "invalid float",
    ),
    ("serve port out of range", lambda f: ["serve", "--port", "70000"], "70000"),
    ("serve port not a number", lambda f: ["serve", "--port", "http"], "invalid int"),
    ("serve max tokens", lambda f: ["serve", "--max-tokens", "0"], "--max-tokens"),
    (
        "cluster missing graph",
        lambda f: ["cluster", str(f["missing"]), "-k", "2", "--out", str(f["root"] / "c.json")],
        "missing",
    ),
    (
        "cluster garbage graph",
        lambda f: [
            "cluster",
            str(f["garbage_json"]),
            "-k",
            "2",
            "--out",
            str(f["root"] / "c.json"),
        ],
        "garbage.json",
    ),
    *[
        (
            f"dashboard prompts {key}",
            lambda f, key=key: [
                "dashboard",
                "--out",
                str(f["missing"]),
                "--prompts",
                str(f[f"prompts_{key}"]),
                "--no-progress",
            ],
            expected,
        )
        for key, expected in (
            ("bad_json", "prompts.json"),
            ("bad_utf8", "prompts.txt"),
            ("empty", "empty.txt"),
        )
    ],
    *[
        (
            f"cluster graph {key}",
            lambda f, key=key: [
                "cluster",
                str(f[key]),
                "-k",
                "2",
                "--out",
                str(f["root"] / "c.json"),
            ],
            expected,
        )
        for key, expected in (
            ("deep_json", "deep.json"),
            ("graph_negative_pos", "negative_pos.json"),
            ("graph_duplicate_node", "duplicate_node.json"),
            ("graph_no_metric", "no_metric.json"),
            ("graph_nan_setting", "nan_setting.json"),
            ("graph_wrong_version", "wrong_version.json"),
            ("graph_no_tensors", "no_tensors.json"),
        )
    ],
    (
        "cluster out is a folder",
        lambda f: ["cluster", str(f["garbage_json"]), "-k", "2", "--out", str(f["dir"])],
        "is a folder",
    ),
]


@pytest.mark.parametrize(("argv", "expected"), [(c[1], c[2]) for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])  # fmt: skip
def test_bad_input_is_one_line_and_nonzero(
    argv: Callable[[dict[str, Path]], list[str]],
    expected: str,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = files["root"] / "cwd"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    try:
        status = main(argv(files))
    except SystemExit as exit_:  # argparse
        status = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status not in (0, None), err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert "weights_only=False" not in err
    assert "\x1b" not in err
    assert "\x07" not in err
    assert expected in lines[0], lines[0]
    assert not (work / "pwned").exists()
    assert sorted(p.name for p in work.iterdir()) == []  # nothing half-written, no stray folder
    assert (files["user_dir"] / "notes.txt").read_text() == "mine"


def test_terminal_text_escapes_control_characters() -> None:
    text = "hook\x1b[2J\x07\u202e\u2028\x85ok é"
    shown = terminal_text(text)
    assert shown == "hook\\x1b[2J\\x07\\u202e\\u2028\\x85ok é"


def test_info_escapes_names_from_cfg_json(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook name that the model accepts can still carry no escape to the terminal."""
    from feature_lens.cli import info

    class FakeDictionary:
        kind, d_in, d_sae, sae = "sae", 4, 8, None
        hook_in = "blocks.0.hook_resid_post\x1b[31m"

    class FakeCfg:
        model_name = "m\x1b]0;title\x07"
        n_layers = n_heads = d_model = d_vocab = n_ctx = 1

    class FakeLens:
        gradient_mode = "straight_through"
        dictionaries: ClassVar[dict[str, object]] = {"site\x1b[2J": FakeDictionary()}

        class model:  # noqa: N801 - mirrors lens.model.cfg
            cfg = FakeCfg

    monkeypatch.setattr(info, "load_lens", lambda args: FakeLens())
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "site\\x1b[2J" in out
    assert "\\x1b]0;title\\x07" in out


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_ctrl_c_while_starting_is_one_line(tmp_path: Path) -> None:
    """SIGINT while torch is still importing: one line, status 130, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "feature_lens", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 120
    while "libtorch" not in maps.read_text() and time.monotonic() < deadline:  # importing torch
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "feature-lens info: interrupted; no partial output was kept"
    ]


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, feature_lens.cli; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env
    )
    assert out.stdout.strip() == "False", out.stderr
