"""The configuration of one training run, as a plain dataclass.

Field names follow the seed's CLI flags (``--N --m --k --eps --log2_batch_size ...``). The defaults
are those of the seed's command line (its ``main.py``): the paper's model sizes with batch 2^7,
learning rate 0.03 and 2^12 steps. (The seed's ``monosemanticity_runner`` function has other
defaults, batch 2^8, learning rate 0.003 and 2^15 steps, but ``main.py`` always passes its own.)
The paper's own runs used batch 2^13 and 2^17 steps (``sweeps.PRESETS["paper"]``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

SampleKind = Literal["equal", "power-law", "power-law-filled"]
Task = Literal["autoencoder", "re-projector", "abs"]
Nonlinearity = Literal["ReLU", "GeLU", "SoLU"]

SAMPLE_KINDS: tuple[str, ...] = ("equal", "power-law", "power-law-filled")
TASKS: tuple[str, ...] = ("autoencoder", "re-projector", "abs")
NONLINEARITIES: tuple[str, ...] = ("ReLU", "GeLU", "SoLU")

# Spellings used by the original code and the seed, mapped to ours.
_ALIASES = {"power_law": "power-law", "random_proj": "re-projector", "decoder": "autoencoder"}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run (given the code version).

    Attributes:
        N: number of sparse features.
        m: embedding dimension (model input width).
        k: number of hidden neurons.
        eps: probability that a feature is active (mean over features for ``power-law``).
        log2_batch_size: log2 of the batch size.
        learning_rate: peak LAMB learning rate.
        log2_training_steps: log2 of the number of optimiser steps.
        sample_kind: ``equal`` (every feature has probability eps), ``power-law`` (the seed's
            clipped power law) or ``power-law-filled`` (water-filled; see ``data.py``).
        task: ``autoencoder`` (the paper's "decoder"), ``re-projector`` or ``abs``.
        decay: bias decay rate; biases are multiplied by ``1 - decay * learning_rate`` after
            every step of the first half of training.
        initial_bias: constant added to every hidden bias at initialisation (the "bias offset").
        nonlinearity: ``ReLU``, ``GeLU`` or ``SoLU`` (x * exp(x), as in the original code).
        reg: L1 penalty on hidden activations (summed over neurons, averaged over the batch).
        lr_period: ``T_max`` of the cosine schedule in steps; the original used 2^9 whatever the
            run length, so the learning rate oscillates with period ``2 * lr_period``.
        seed: seeds the embedding, the initialisation and the data stream.
    """

    N: int = 512
    m: int = 64
    k: int = 1024
    eps: float = 1 / 64
    log2_batch_size: int = 7
    learning_rate: float = 0.03
    log2_training_steps: int = 12
    sample_kind: SampleKind = "equal"
    task: Task = "autoencoder"
    decay: float = 0.0
    initial_bias: float = 0.0
    nonlinearity: Nonlinearity = "ReLU"
    reg: float = 0.0
    lr_period: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("sample_kind", SAMPLE_KINDS),
            ("task", TASKS),
            ("nonlinearity", NONLINEARITIES),
        ):
            value = getattr(self, name)
            value = _ALIASES.get(value, value)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
            object.__setattr__(self, name, value)
        for name in ("N", "m", "k", "lr_period"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("log2_batch_size", "log2_training_steps", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("eps", "learning_rate", "decay", "initial_bias", "reg"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"eps must be in (0, 1], got {self.eps}")

    @property
    def batch_size(self) -> int:
        """Examples per optimiser step."""
        return 2**self.log2_batch_size

    @property
    def training_steps(self) -> int:
        """Number of optimiser steps."""
        return 2**self.log2_training_steps

    @property
    def output_dim(self) -> int:
        """Width of the model output: m for the re-projector, N otherwise."""
        return self.m if self.task == "re-projector" else self.N

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed (values are validated and coerced)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown RunConfig fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**data)

    def digest(self) -> str:
        """A short stable hash of the full config, used to name and de-duplicate result files."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]
