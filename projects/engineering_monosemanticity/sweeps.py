"""Table 1 of Jermyn, Schiefer & Hubinger (2022) as named sweeps, and the size presets.

Each batch fixes the columns the table gives and sweeps the column marked "Variable". The table
names two batches "B3"; the second (GeLU, learning rate *and* bias offset variable) is called
``G1`` here and is swept over the grid of both. "Decoder" is the ``autoencoder`` task.

The table does not give the swept values; these are our choice (log-spaced where the variable is
a positive scale, linear for the signed bias offset), covering the range of the original
plotting scripts (learning rates 0.001-0.03):

====================  =================================================================
variable              values
====================  =================================================================
learning_rate         0.001, 0.002, 0.004, 0.008, 0.016, 0.032 (factor 2)
initial_bias          -2, -1.5, -1, -0.5, 0, 0.5, 1
eps                   2^-2 ... 2^-8 (factor 2)
k                     32 ... 2048 (factor 2) at paper size; scaled with the preset
reg                   1e-6 ... 1e-1 (factor 10)
decay                 0.001, 0.003, 0.01, 0.03, 0.1, 0.3 (factor ~3)
G1                    learning_rate 0.002, 0.008, 0.032  x  initial_bias -2, -1, 0, 1
====================  =================================================================

Presets set the sizes the table leaves free (batch, steps) and may shrink the model:

- ``paper``: N=512, m=64, k as in the table, batch 2^13, 2^17 steps (the original data files are
  named ``batch_13_steps_17``). A GPU job: about 131k steps of a 8192-sample batch per run.
- ``cpu``: every width divided by 4 (N=128, m=16, k=256 or 512, k sweep 8...512), batch 2^8,
  2^12 steps; eps, learning rates, decay, bias offsets and L1 strengths exactly as in the table.
  Keeping eps fixed keeps the number of active features per embedding dimension (N eps / m) the
  same as in the paper. About 5-10 s per run on one CPU core.
- ``cpu-long``: the ``cpu`` sizes trained 4x longer (2^14 steps), for the bias batches, whose
  bias decay acts only over the first half of training.
- ``tiny``: N=64, m=8, k/8, batch 2^7, 2^10 steps: for tests and smoke runs (~1 s per run).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from projects.engineering_monosemanticity.config import RunConfig

PAPER_N, PAPER_M = 512, 64

LR_VALUES = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032)
BIAS_VALUES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0)
EPS_VALUES = tuple(2.0**-j for j in range(2, 9))
K_VALUES = tuple(2**j for j in range(5, 12))  # paper size; presets scale them
REG_VALUES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
DECAY_VALUES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


@dataclass(frozen=True)
class Sweep:
    """One batch of Table 1: fixed settings plus the swept variable(s) and their values.

    ``fixed`` holds paper-size values (k in particular); a ``Preset`` rescales the widths.
    ``variables`` maps each swept field to its values; two variables form a grid.
    """

    name: str
    description: str
    fixed: dict[str, Any]
    variables: dict[str, tuple[float, ...]]

    @property
    def sweep_vars(self) -> tuple[str, ...]:
        """The swept field names, in order."""
        return tuple(self.variables)


@dataclass(frozen=True)
class Preset:
    """Run sizes: width scale relative to the paper, batch size and step count."""

    name: str
    width_divisor: int
    log2_batch_size: int
    log2_training_steps: int
    lr_period: int = 512
    extra: dict[str, Any] = field(default_factory=dict)

    def configs(self, sweep: Sweep, seed: int = 0) -> Iterator[RunConfig]:
        """The run configs of ``sweep`` at this preset's sizes, one per grid point."""
        d = self.width_divisor
        names = sweep.sweep_vars
        for values in itertools.product(*(sweep.variables[n] for n in names)):
            settings = {**sweep.fixed, **dict(zip(names, values, strict=True))}
            settings["k"] = max(1, int(settings["k"]) // d)
            sizes = {
                "N": PAPER_N // d,
                "m": PAPER_M // d,
                "log2_batch_size": self.log2_batch_size,
                "log2_training_steps": self.log2_training_steps,
                "lr_period": self.lr_period,
                "seed": seed,
            }
            yield RunConfig.from_dict({**sizes, **settings, **self.extra})


PRESETS: dict[str, Preset] = {
    "paper": Preset("paper", 1, 13, 17),
    "cpu": Preset("cpu", 4, 8, 12),
    "tiny": Preset("tiny", 8, 7, 10),
    "cpu-long": Preset("cpu-long", 4, 8, 14),
}


def _batch(
    name: str,
    description: str,
    variables: dict[str, tuple[float, ...]],
    *,
    task: str = "autoencoder",
    nonlinearity: str = "ReLU",
    sample_kind: str = "equal",
    k: int = 1024,
    eps: float = 1 / 64,
    learning_rate: float = 0.003,
    decay: float = 0.0,
    initial_bias: float = 0.0,
    reg: float = 0.0,
) -> Sweep:
    fixed: dict[str, Any] = {
        "task": task,
        "nonlinearity": nonlinearity,
        "sample_kind": sample_kind,
        "k": k,
        "eps": eps,
        "learning_rate": learning_rate,
        "decay": decay,
        "initial_bias": initial_bias,
        "reg": reg,
    }
    for var in variables:
        fixed.pop(var)
    return Sweep(name, description, fixed, variables)


def _table1() -> dict[str, Sweep]:
    lr = {"learning_rate": LR_VALUES}
    bias = {"initial_bias": BIAS_VALUES}
    eps = {"eps": EPS_VALUES}
    k = {"k": tuple(float(x) for x in K_VALUES)}
    neg: dict[str, Any] = {"decay": 0.03, "initial_bias": -1.0}
    sweeps = [
        _batch("LR1", "learning rate, uniform features, no bias offset or decay", lr),
        _batch("LR2", "learning rate, power-law features", lr, sample_kind="power-law"),
        _batch("LR3", "learning rate, bias offset -1, decay 0.03", lr, **neg),
        _batch("B1", "bias offset at eps=1/16", bias, eps=1 / 16, decay=0.03),
        _batch("B2", "bias offset at eps=1/32", bias, eps=1 / 32, decay=0.003),
        _batch("B3", "bias offset at eps=1/64", bias, eps=1 / 64, decay=0.003),
        _batch("B4", "bias offset at eps=1/128", bias, eps=1 / 128, decay=0.003),
        _batch("B5", "bias offset at eps=1/256", bias, eps=1 / 256, decay=0.003),
        _batch(
            "LR4",
            "learning rate, power-law, bias -1, decay 0.03",
            lr,
            sample_kind="power-law",
            **neg,
        ),
        _batch(
            "G1",
            "GeLU: learning rate x bias offset grid (the table's second 'B3')",
            {"learning_rate": (0.002, 0.008, 0.032), "initial_bias": (-2.0, -1.0, 0.0, 1.0)},
            nonlinearity="GeLU",
            decay=0.03,
        ),
        _batch("E1", "feature probability, decay 0.03", eps, **neg),
        _batch("E2", "feature probability, decay 0.01", eps, decay=0.01, initial_bias=-1.0),
        _batch("E3", "feature probability, decay 0.003", eps, decay=0.003, initial_bias=-1.0),
        _batch("E4", "feature probability, decay 0.001", eps, decay=0.001, initial_bias=-1.0),
        _batch("K0", "width, no bias offset or decay", k, learning_rate=0.007),
        _batch("K1", "width, bias -1, decay 0.03", k, learning_rate=0.007, **neg),
        _batch(
            "K2",
            "width, power-law, bias -1, decay 0.03",
            k,
            learning_rate=0.007,
            sample_kind="power-law",
            **neg,
        ),
        _batch("RG1", "L1 activation penalty", {"reg": REG_VALUES}, learning_rate=0.005, **neg),
        _batch("RP1", "learning rate, re-projector task", lr, task="re-projector", **neg),
        _batch("LR5", "learning rate, abs task, k=2048", lr, task="abs", k=2048, **neg),
        _batch(
            "D1",
            "bias decay rate, abs task, k=2048",
            {"decay": DECAY_VALUES},
            task="abs",
            k=2048,
            learning_rate=0.007,
            initial_bias=-1.0,
        ),
    ]
    return {s.name: s for s in sweeps}


TABLE1: dict[str, Sweep] = _table1()
