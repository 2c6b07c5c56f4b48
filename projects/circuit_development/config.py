"""Settings of the circuit-development pipeline, as one frozen dataclass.

The model and its optimisation are the zoo's own (`ZooModelConfig`, `ModelTrainingConfig`), so the
final checkpoint is the shipped zoo model retrained with the same seed. Weights are saved at
`checkpoint_steps` (log-spaced early, where most of the change happens); task accuracy is measured
at the denser `eval_steps`, which cost only a few forward passes each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from feature_lens.zoo.model import ZooModelConfig
from feature_lens.zoo.train import ModelTrainingConfig


def log_spaced_steps(total: int, n: int, first: int = 10) -> tuple[int, ...]:
    """Step 0 and `n - 1` log-spaced integer steps from `first` to `total` (duplicates merged)."""
    if not 0 < first < total or n < 2:
        raise ValueError(
            f"need 0 < first < total and n >= 2, got first={first}, total={total}, n={n}"
        )
    steps = np.unique(np.round(np.geomspace(first, total, n - 1)).astype(int))
    return (0, *(int(s) for s in steps))


# Two extra checkpoints inside the IOI/induction transition (steps ~1150-1600), which a first run's
# dense accuracy evaluation showed to fall between the log-spaced checkpoints 918 and 1615.
TRANSITION_STEPS: tuple[int, ...] = (1300, 1450)


@dataclass(frozen=True)
class SaeSettings:
    """TopK SAEs as the zoo trains its residual-stream dictionaries (8x, k=16, lr 1e-3), but
    with fewer activations so that a dozen checkpoints fit the time budget. Dead latents are
    kept (the matching handles them), so every SAE has exactly `expansion * d_model` latents."""

    expansion: int = 8
    k: int = 16
    n_rows: int = 32768
    total_samples: int = 131072
    batch_size: int = 256
    lr: float = 1e-3
    buffer_capacity: int = 16384
    contexts_per_batch: int = 64


@dataclass(frozen=True)
class CircuitSettings:
    """How circuits are found and checked at each checkpoint.

    A node is a feature (or a site's error term) at all positions at once. The circuit followed
    across checkpoints is the top `circuit_size` nodes by |attribution|; faithfulness is measured
    at every size in `faithfulness_sizes` (on the shipped zoo model, 64 such nodes keep 0.3-0.9 of
    the logit diff depending on the task, 512 keep all of it)."""

    n_prompts: int = 32
    n_exact_prompts: int = 6
    circuit_size: int = 64
    faithfulness_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512)
    n_mean_contexts: int = 128


@dataclass(frozen=True)
class ProjectConfig:
    """Everything that determines the pipeline's outputs."""

    model: ZooModelConfig = field(default_factory=ZooModelConfig)
    training: ModelTrainingConfig = field(default_factory=ModelTrainingConfig)
    checkpoint_steps: tuple[int, ...] = field(
        default_factory=lambda: tuple(sorted({*log_spaced_steps(5000, 13), *TRANSITION_STEPS}))
    )
    eval_steps: tuple[int, ...] = field(
        default_factory=lambda: tuple(
            sorted({*log_spaced_steps(5000, 40, 5), *range(0, 5001, 100)})
        )
    )
    sites: tuple[str, ...] = (
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_post",
        "blocks.2.hook_resid_post",
    )
    saes: SaeSettings = field(default_factory=SaeSettings)
    circuits: CircuitSettings = field(default_factory=CircuitSettings)
    n_eval_prompts: int = 200
    n_match_contexts: int = 64
    match_thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
    seed: int = 0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)
