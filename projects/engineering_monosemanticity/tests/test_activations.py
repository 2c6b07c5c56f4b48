"""Single-feature activations redrawn from a stored record, the seed's plot order, the loaders."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from projects.engineering_monosemanticity.__main__ import main
from projects.engineering_monosemanticity.activations import record_activations, sfa_image
from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.metrics import (
    monosemantic_mask,
    single_feature_activations,
)
from projects.engineering_monosemanticity.report import draw_lr_sweep
from projects.engineering_monosemanticity.runner import run_sweep
from projects.engineering_monosemanticity.store import load_sweep, make_record
from projects.engineering_monosemanticity.train import train

SMALL = RunConfig(N=24, m=6, k=16, eps=1 / 8, log2_batch_size=5, log2_training_steps=6, seed=3)


@pytest.mark.parametrize("nonlinearity", ["ReLU", "GeLU"])
def test_record_activations_equal_the_trained_models(nonlinearity: str) -> None:
    result = train(SMALL.replace(nonlinearity=nonlinearity))
    record = json.loads(json.dumps(make_record(result, "s", (), 0.0)))  # through JSON text
    redrawn = record_activations(record)
    direct = single_feature_activations(result.model, result.data.embedder)
    assert torch.equal(redrawn, direct)
    assert int(monosemantic_mask(redrawn).sum()) == record["final"]["n_mono"]


def test_record_without_encoder_is_a_clear_error() -> None:
    record = make_record(train(SMALL), "s", (), 0.0)
    del record["final_encoder"]
    with pytest.raises(ValueError, match="no stored encoder"):
        record_activations(record)


def test_sfa_image_puts_a_permuted_monosemantic_model_on_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    n = 7
    features, neurons = rng.permutation(n), rng.permutation(n)
    responses = torch.zeros(n, n)
    # Feature features[j] drives only neuron neurons[j], at decreasing strength.
    for j in range(n):
        responses[features[j], neurons[j]] = 1.0 - 0.1 * j
    image = sfa_image(responses)
    np.testing.assert_allclose(image, np.diag(np.sort(image.diagonal())[::-1]))


def test_sfa_image_order_matches_a_brute_force_sort() -> None:
    rng = np.random.default_rng(1)
    responses = np.maximum(rng.normal(size=(9, 5)), 0.0)  # (features, neurons)
    responses[:, 2] = 0.0  # a dead neuron sorts last
    score = [responses[:, j].max() / (1e-10 + responses[:, j].mean()) for j in range(5)]
    neuron_order = sorted(range(5), key=lambda j: (-score[j], j))
    rows = responses.T[neuron_order]
    feature_order = sorted(range(9), key=lambda i: (int(np.argmax(rows[:, i])), i))
    expected = rows[:, feature_order]
    np.testing.assert_array_equal(sfa_image(torch.from_numpy(responses)), expected)


def test_load_sweep_sorts_and_reports_missing_rates(tmp_path: Path) -> None:
    configs = [SMALL.replace(learning_rate=lr, log2_training_steps=3) for lr in (0.02, 0.005)]
    run_sweep("cpu/LRX", configs, ("learning_rate",), tmp_path, progress=False)
    records, missing = load_sweep(tmp_path, "cpu/LRX", "learning_rate", [0.005, 0.01, 0.02])
    assert [r["config"]["learning_rate"] for r in records] == [0.005, 0.02]
    assert missing == [0.01]
    with pytest.raises(FileNotFoundError, match="no sweep"):
        load_sweep(tmp_path, "cpu/nothing", "learning_rate")


def test_lr_sweep_draws_figures_and_cli_names_missing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lrs = (0.001, 0.004, 0.016)
    configs = [SMALL.replace(learning_rate=lr, log2_training_steps=3) for lr in lrs]
    run_sweep("cpu/LRX", configs, ("learning_rate",), tmp_path, progress=False)
    paths, missing = draw_lr_sweep(tmp_path, "cpu/LRX", [*lrs, 0.064])
    assert missing == [0.064]
    assert [p.name for p in paths] == ["cpu_LRX_lr_sweep.png", "cpu_LRX_lr_sweep_sfa.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)
    main(["--lr_sweep", "cpu/LRX", "--lr_values", "0.001", "0.002", "--results_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "learning_rate=0.002 not found in cpu/LRX" in out
    assert "lr_sweep_sfa.png" in out
