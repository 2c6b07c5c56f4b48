"""Circuits on two checkpoints (the untrained model and the trained zoo model) agree with those
checkpoints' task accuracy; persistence bookkeeping on a hand-made example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens.lens import Lens
from feature_lens.zoo import load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.dictionaries import load_dictionary
from feature_lens.zoo.metrics import task_score
from feature_lens.zoo.model import ZooModelConfig, build_model
from projects.circuit_development.circuits import circuit_persistence, task_circuit
from projects.circuit_development.config import CircuitSettings, ProjectConfig, SaeSettings
from projects.circuit_development.saes import train_step_saes

SETTINGS = CircuitSettings(
    n_prompts=8,
    n_exact_prompts=2,
    circuit_size=16,
    faithfulness_sizes=(16, 512),
    n_mean_contexts=16,
)
TASK = "agreement"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Lens]]:
    """Step 0 (fresh initialisation, its SAEs trained here on few samples) and the final step
    (the shipped zoo model, which is the last checkpoint of the project's run, and its SAEs)."""
    trained = load_zoo_model()
    sites = [h for h in zoo_dictionary_dirs() if h.endswith("hook_resid_post")]
    trained_lens = Lens(trained, [load_dictionary(zoo_dictionary_dirs()[h]) for h in sites])
    untrained = build_model(ZooModelConfig(), trained.tokenizer, seed=0)
    untrained.eval()
    config = ProjectConfig(
        sites=tuple(sites),
        saes=SaeSettings(expansion=2, n_rows=2048, total_samples=4096, buffer_capacity=2048),
    )
    out: Path = tmp_path_factory.mktemp("step0")
    train_step_saes(untrained, out, config, sae_seed=100, n_quality_contexts=8)
    untrained_lens = Lens(untrained, [load_dictionary(out / h) for h in sites])
    return {"untrained": (untrained, untrained_lens), "trained": (trained, trained_lens)}


def test_circuits_follow_task_accuracy(checkpoints: dict[str, tuple[Any, Lens]]) -> None:
    records = {}
    for name, (model, lens) in checkpoints.items():
        score = task_score(model, TASK, 64)
        records[name] = (score, task_circuit(lens, TASK, SETTINGS))
    (bad, early), (good, late) = records["untrained"], records["trained"]
    assert bad.accuracy < 0.1
    assert good.accuracy > 0.9
    # the circuit's metric is the task's logit diff: large and sign-flipped by the corruption in
    # the trained model, negligible in the untrained one
    assert late["metric_clean"] > 5.0
    assert late["metric_corrupted"] < -5.0
    assert abs(early["metric_clean"]) < 0.5
    assert abs(early["metric_corrupted"]) < 0.5
    # the trained model's attributions are an order of magnitude larger and carried by features
    strength = {
        name: sum(abs(e) for _, e in record["nodes"][:16]) for name, (_, record) in records.items()
    }
    assert strength["trained"] > 10 * strength["untrained"]
    assert late["error_share"] < 0.5
    assert len(late["circuit"]) >= 8
    # a trained circuit of 512 nodes keeps the behaviour; attribution agrees with exact patching
    assert late["faithfulness"]["512"] > 0.9
    assert late["exact"]["correlation"] > 0.8
    assert late["exact"]["top_overlap"] >= 0.5


def test_circuit_persistence_counts() -> None:
    earlier = [["a", 1], ["a", 2], ["b", 5]]
    later = [["a", 10], ["a", 20], ["b", 50], ["b", 60]]
    # a1 -> a10 (in the earlier circuit: persisted), a3 -> a20 (existed, outside the circuit),
    # b5 -> b50 (persisted); b60 has no partner (new)
    matches = {"a": {1: 10, 3: 20}, "b": {5: 50}}
    got = circuit_persistence(earlier, later, matches)
    assert got == {"persisted": 0.5, "matched": 0.75, "new": 0.25}
    assert torch.isnan(torch.tensor(circuit_persistence(earlier, [], matches)["new"]))
