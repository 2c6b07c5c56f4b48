"""A scaled-down sweep reproduces the paper's two main trends.

At N=64 features in m=8 dimensions (eps=1/32, 2^10 steps of batch 2^7; about a second per run):
monosemanticity rises with the learning rate (Jermyn et al., LR1) and with the width k (K0).
"""

import pytest

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.train import train

BASE = RunConfig(N=64, m=8, k=128, eps=1 / 32, log2_batch_size=7, log2_training_steps=10)


@pytest.fixture(scope="module")
def n_mono() -> dict[tuple[float, int], int]:
    runs = {(0.002, 128), (0.032, 128), (0.032, 16)}
    return {
        (lr, k): train(BASE.replace(learning_rate=lr, k=k)).snapshots[-1].stats.n_mono
        for lr, k in runs
    }


def test_monosemanticity_rises_with_learning_rate(n_mono: dict[tuple[float, int], int]) -> None:
    assert n_mono[(0.032, 128)] >= n_mono[(0.002, 128)] + 5


def test_monosemanticity_rises_with_width(n_mono: dict[tuple[float, int], int]) -> None:
    assert n_mono[(0.032, 128)] >= n_mono[(0.032, 16)] + 5
