"""Bit-for-bit reruns on one machine (see README, Determinism) and the seed's CLI defaults."""

import json
from pathlib import Path

import torch

from projects.engineering_monosemanticity.__main__ import build_parser
from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.rerun import rerun_record
from projects.engineering_monosemanticity.runner import run_sweep
from projects.engineering_monosemanticity.store import make_record
from projects.engineering_monosemanticity.train import train

SMALL = RunConfig(
    N=32, m=8, k=48, eps=1 / 16, log2_batch_size=6, log2_training_steps=6, learning_rate=0.03
)


def _run(caller_threads: int) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    saved = torch.get_num_threads()
    torch.set_num_threads(caller_threads)
    try:
        result = train(SMALL)  # pins its own thread count (1) whatever the caller's
        assert torch.get_num_threads() == caller_threads  # and restores the caller's
    finally:
        torch.set_num_threads(saved)
    record = make_record(result, "s", (), 0.0)
    assert record["environment"]["threads"] == 1
    return result.model.state_dict(), record


def test_rerun_is_bit_identical_whatever_the_callers_thread_count() -> None:
    # Unpinned, the held-out loss (a 4096-row reduction) differed in its last bits between
    # 1 and 2 threads on this machine; train() now runs every CPU run at its own thread count.
    state_a, record_a = _run(1)
    state_b, record_b = _run(2)
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name
    assert record_a == record_b  # losses, histories, biases, held-out loss, encoder bytes


def test_cli_defaults_are_the_seeds_main_py() -> None:
    # Transcribed from the seed's main.py argparse defaults (its monosemanticity_runner
    # function has others: batch 2^8, lr 0.003, 2^15 steps, which main.py always overrides).
    seed_main = {
        "N": 512, "m": 64, "k": 1024, "eps": 0.015625, "log2_batch_size": 7,
        "learning_rate": 0.03, "log2_training_steps": 12, "sample_kind": "equal",
        "task": "autoencoder", "decay": 0.0, "initial_bias": 0.0, "nonlinearity": "ReLU",
        "reg": 0.0, "device": "cpu",
    }  # fmt: skip
    args = build_parser().parse_args([])
    assert {name: getattr(args, name) for name in seed_main} == seed_main
    assert RunConfig().batch_size == 2**7
    assert RunConfig().training_steps == 2**12


def test_rerun_of_a_stored_run_is_identical_and_a_tampered_record_is_caught(
    tmp_path: Path,
) -> None:
    config = SMALL.replace(log2_training_steps=5)
    (path,) = run_sweep("cpu/X", [config], (), tmp_path, progress=False)
    same = rerun_record(path)
    assert same.identical
    assert same.first_loss_difference is None
    assert "identical" in same.summary()
    record = json.loads(path.read_text())
    record["history"]["losses"][1] += 0.5  # the loss logged after step 16
    path.write_text(json.dumps(record))
    changed = rerun_record(path)
    assert not changed.identical
    assert changed.first_loss_difference == 16
    assert "up to step 16" in changed.summary()
