"""Table 1 as named sweeps, presets, resumable storage and the CLI."""

import json
from pathlib import Path

import pytest

from projects.engineering_monosemanticity import runner
from projects.engineering_monosemanticity.__main__ import main
from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.store import load_records
from projects.engineering_monosemanticity.sweeps import PRESETS, TABLE1

V = "var"
# Table 1 of the paper, transcribed independently of sweeps.py:
# task, activation, distribution, k, eps, learning rate, decay, bias offset, L1.
TABLE = {
    "LR1": ("autoencoder", "ReLU", "equal", 1024, 1 / 64, V, 0, 0, 0),
    "LR2": ("autoencoder", "ReLU", "power-law", 1024, 1 / 64, V, 0, 0, 0),
    "LR3": ("autoencoder", "ReLU", "equal", 1024, 1 / 64, V, 0.03, -1, 0),
    "B1": ("autoencoder", "ReLU", "equal", 1024, 1 / 16, 0.003, 0.03, V, 0),
    "B2": ("autoencoder", "ReLU", "equal", 1024, 1 / 32, 0.003, 0.003, V, 0),
    "B3": ("autoencoder", "ReLU", "equal", 1024, 1 / 64, 0.003, 0.003, V, 0),
    "B4": ("autoencoder", "ReLU", "equal", 1024, 1 / 128, 0.003, 0.003, V, 0),
    "B5": ("autoencoder", "ReLU", "equal", 1024, 1 / 256, 0.003, 0.003, V, 0),
    "LR4": ("autoencoder", "ReLU", "power-law", 1024, 1 / 64, V, 0.03, -1, 0),
    "G1": ("autoencoder", "GeLU", "equal", 1024, 1 / 64, V, 0.03, V, 0),
    "E1": ("autoencoder", "ReLU", "equal", 1024, V, 0.003, 0.03, -1, 0),
    "E2": ("autoencoder", "ReLU", "equal", 1024, V, 0.003, 0.01, -1, 0),
    "E3": ("autoencoder", "ReLU", "equal", 1024, V, 0.003, 0.003, -1, 0),
    "E4": ("autoencoder", "ReLU", "equal", 1024, V, 0.003, 0.001, -1, 0),
    "K0": ("autoencoder", "ReLU", "equal", V, 1 / 64, 0.007, 0, 0, 0),
    "K1": ("autoencoder", "ReLU", "equal", V, 1 / 64, 0.007, 0.03, -1, 0),
    "K2": ("autoencoder", "ReLU", "power-law", V, 1 / 64, 0.007, 0.03, -1, 0),
    "RG1": ("autoencoder", "ReLU", "equal", 1024, 1 / 64, 0.005, 0.03, -1, V),
    "RP1": ("re-projector", "ReLU", "equal", 1024, 1 / 64, V, 0.03, -1, 0),
    "LR5": ("abs", "ReLU", "equal", 2048, 1 / 64, V, 0.03, -1, 0),
    "D1": ("abs", "ReLU", "equal", 2048, 1 / 64, 0.007, V, -1, 0),
}
COLUMNS = (
    "task",
    "nonlinearity",
    "sample_kind",
    "k",
    "eps",
    "learning_rate",
    "decay",
    "initial_bias",
    "reg",
)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_batch_matches_table1(name: str) -> None:
    sweep = TABLE1[name]
    configs = list(PRESETS["paper"].configs(sweep))
    swept = {c for c, want in zip(COLUMNS, TABLE[name], strict=True) if want == V}
    assert set(sweep.sweep_vars) == swept
    expected_runs = 1
    for var in swept:
        expected_runs *= len(sweep.variables[var])
        assert len({getattr(c, var) for c in configs}) == len(sweep.variables[var]) >= 3
    assert len(configs) == expected_runs
    for config in configs:
        assert (config.N, config.m) == (512, 64)
        assert (config.log2_batch_size, config.log2_training_steps) == (13, 17)
        for column, want in zip(COLUMNS, TABLE[name], strict=True):
            if want != V:
                assert getattr(config, column) == pytest.approx(want), (name, column)


def test_every_batch_is_defined() -> None:
    assert set(TABLE1) == set(TABLE)


def test_cpu_preset_scales_widths_only() -> None:
    paper = list(PRESETS["paper"].configs(TABLE1["K1"]))
    cpu = list(PRESETS["cpu"].configs(TABLE1["K1"]))
    for p, c in zip(paper, cpu, strict=True):
        assert (c.N, c.m, c.k) == (p.N // 4, p.m // 4, p.k // 4)
        assert (c.eps, c.learning_rate, c.decay, c.initial_bias) == (
            p.eps,
            p.learning_rate,
            p.decay,
            p.initial_bias,
        )


def test_runs_are_stored_with_config_and_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = [
        RunConfig(N=16, m=4, k=8, log2_batch_size=4, log2_training_steps=3, learning_rate=lr)
        for lr in (0.01, 0.02)
    ]
    paths = runner.run_sweep("s", configs, ("learning_rate",), tmp_path, progress=False)
    assert len(paths) == 2
    assert all(p.exists() for p in paths)
    for path, config in zip(paths, configs, strict=True):
        record = json.loads(path.read_text())
        assert RunConfig.from_dict(record["config"]) == config
        assert record["history"]["snapshot_steps"] == [0, 1, 2, 4, 8]
        assert len(record["final_biases"]) == 8

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a completed run was trained again")

    monkeypatch.setattr(runner, "train", fail)
    assert runner.run_sweep("s", configs, ("learning_rate",), tmp_path, progress=False) == paths
    # A new sweep value is not complete, so it is trained (here: hits the stub).
    with pytest.raises(AssertionError, match="trained again"):
        runner.run_sweep(
            "s",
            [configs[0].replace(learning_rate=0.03)],
            ("learning_rate",),
            tmp_path,
            progress=False,
        )


def test_cli_custom_sweep_writes_one_file_per_value(tmp_path: Path) -> None:
    main(
        [
            "--N",
            "16",
            "--m",
            "4",
            "--k",
            "8",
            "--log2_batch_size",
            "4",
            "--log2_training_steps",
            "3",
            "--sweep_var",
            "k",
            "--sweep_values",
            "4",
            "8",
            "--file_name",
            "cli",
            "--results_dir",
            str(tmp_path),
            "--quiet",
        ]
    )
    records = load_records(tmp_path)
    assert sorted(r["config"]["k"] for r in records) == [4, 8]
    assert {r["sweep"] for r in records} == {"cli"}


def test_cpu_long_preset_is_cpu_trained_four_times_longer() -> None:
    for name in ("B1", "B3"):
        cpu = list(PRESETS["cpu"].configs(TABLE1[name]))
        long = list(PRESETS["cpu-long"].configs(TABLE1[name]))
        assert [c.replace(log2_training_steps=14) for c in cpu] == long
        assert {c.training_steps for c in long} == {4 * 2**12}
