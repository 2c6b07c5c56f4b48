"""The command line, run in-process on a local Hugging Face model folder and SAE-Lens folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feature_lens.cli import main
from feature_lens.graph import AttributionGraph
from tests.conftest import make_sae
from tests.test_loading import _save_gpt2_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    _save_gpt2_folder(root / "model", root / "tok")
    paths = {"model": root / "model"}
    for layer, arch in ((0, "standard"), (1, "topk")):
        sae = make_sae(arch, 32, f"blocks.{layer}.hook_resid_post", seed=layer, model_name="")
        sae.save_model(root / f"sae{layer}")
        paths[f"sae{layer}"] = root / f"sae{layer}"
    return paths


def _lens_args(folders: dict[str, Path]) -> list[str]:
    return [
        "--model",
        str(folders["model"]),
        "--sae",
        str(folders["sae0"]),
        "--sae",
        str(folders["sae1"]),
    ]


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("info", "zoo", "attribute", "dashboard"):
        assert command in out


def test_info(folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", *_lens_args(folders)]) == 0
    out = capsys.readouterr().out
    assert "blocks.0.hook_resid_post" in out
    assert "TopKSAE" in out


def test_attribute_writes_a_graph_and_refuses_to_overwrite(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "graph.json"
    args = [
        "attribute",
        *_lens_args(folders),
        "--prompt", "w1 w2 w3 w4 w5",
        "--corrupted", "w1 w2 w9 w4 w5",
        "--correct", "w6",
        "--wrong", "w7",
        "--method", "exact",
        "--max-nodes", "8",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    graph = AttributionGraph.load(out)
    assert graph.method == "exact"
    assert 1 < len(graph.nodes) <= 9
    assert json.loads(out.read_text())["settings"]["baseline"] == "corrupted"
    assert main(args) == 1
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--method", "direct"]) == 0
    assert AttributionGraph.load(out).method == "direct"
    # --preselect K: exact patching of the K nodes attribution patching ranks first.
    assert main([*args, "--overwrite", "--preselect", "3"]) == 0
    graph = AttributionGraph.load(out)
    assert graph.settings["preselect"] == 3
    assert 1 < len(graph.nodes) <= 4
    assert main([*args, "--overwrite", "--method", "attribution", "--preselect", "3"]) == 1
    assert "--preselect" in capsys.readouterr().err


def test_attribute_bad_input_is_reported(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["attribute", *_lens_args(folders), "--out", str(tmp_path / "g.json")]
    assert main([*base, "--prompt", "w1 w2", "--corrupted", "w1 w2 w3"]) == 1
    assert "same token length" in capsys.readouterr().err
    assert main(base) == 1
    assert "give prompts" in capsys.readouterr().err
    assert (
        main(
            ["attribute", "--model", str(tmp_path / "nowhere"), "--out", "x.json", "--prompt", "w1"]
        )
        == 1
    )
    assert "neither a folder nor a model name" in capsys.readouterr().err


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["frobnicate"])
    assert "unknown command" in capsys.readouterr().err


def test_direction_files_steer_and_cluster(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    np.save(tmp_path / "up.npy", np.random.default_rng(0).normal(size=(2, 32)).astype("float32"))
    save_file({"v": torch.randn(32)}, str(tmp_path / "probe.safetensors"))
    hook = "blocks.0.hook_resid_post"
    assert main(["info", *_lens_args(folders), "--direction", f"{hook}:{tmp_path / 'up.npy'}"]) == 0
    assert f"{hook}:up" in capsys.readouterr().out
    steer_args = [
        "steer",
        *_lens_args(folders),
        "--steer",
        f"{hook}:{tmp_path / 'probe.safetensors'}",
        "--alpha",
        "4",
        "--prompt",
        "w1 w2 w3",
        "--generate",
        "2",
    ]
    assert main(steer_args) == 0
    out = capsys.readouterr().out
    assert "promoted:" in out
    assert "'w1 w2 w3' ->" in out
    graph_path = tmp_path / "g.json"
    assert (
        main(
            [
                "attribute",
                *_lens_args(folders),
                "--direction",
                f"{hook}:{tmp_path / 'up.npy'}",
                "--prompt",
                "w1 w2 w3 w4",
                "--corrupted",
                "w1 w5 w3 w4",
                "--correct",
                "w6",
                "--wrong",
                "w7",
                "--method",
                "direct",
                "--positions",
                "sum",
                "--max-nodes",
                "30",
                "--out",
                str(graph_path),
            ]
        )
        == 0
    )
    clustered = tmp_path / "c.json"
    assert main(["cluster", str(graph_path), "-k", "2", "--out", str(clustered)]) == 0
    assert "cluster 0:" in capsys.readouterr().out
    annotated = AttributionGraph.load(clustered)
    assert {n.cluster for n in annotated.nodes.values() if n.kind == "feature"} <= {0, 1}
    assert (
        main(["info", *_lens_args(folders), "--direction", f"{hook}:{tmp_path / 'missing.npy'}"])
        == 1
    )
    assert "no direction file" in capsys.readouterr().err
