"""Rerun a stored run from its record and say where the rerun departs from it.

``python -m projects.engineering_monosemanticity --rerun results/cpu/LR1/<file>.json`` trains the
record's config again (at the record's thread count) and compares the logged losses (at the
4 significant digits stored), the monosemantic-neuron history, the final count and the final
held-out loss. Used to check the determinism claim of the README on another machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.store import make_record
from projects.engineering_monosemanticity.train import train


@dataclass(frozen=True)
class RerunComparison:
    """How a rerun compares with its stored record."""

    identical: bool  # every stored loss, history, bias, ratio and the encoder match
    first_loss_difference: int | None  # training step of the first differing logged loss
    stored_n_mono: list[int]
    rerun_n_mono: list[int]
    stored_final_loss: float
    rerun_final_loss: float

    def summary(self) -> str:
        """One paragraph for the terminal."""
        if self.identical:
            return f"rerun identical to the record (# mono by snapshot {self.rerun_n_mono})"
        where = (
            "all logged losses agree"
            if self.first_loss_difference is None
            else f"logged losses agree up to step {self.first_loss_difference} (exclusive)"
        )
        return (
            f"rerun differs: {where}; # mono by snapshot stored {self.stored_n_mono}, "
            f"rerun {self.rerun_n_mono}; final loss stored {self.stored_final_loss:.6g}, "
            f"rerun {self.rerun_final_loss:.6g}"
        )


def rerun_record(path: Path) -> RerunComparison:
    """Train ``path``'s config again and compare the new record with the stored one."""
    stored = json.loads(Path(path).read_text())
    config = RunConfig.from_dict(stored["config"])
    threads = int(stored.get("environment", {}).get("threads", 1))
    fresh = make_record(train(config, threads=threads), stored["sweep"], (), 0.0)
    keys = ("history", "final", "final_biases", "final_mono_ratio")
    identical = all(fresh[k] == stored[k] for k in keys) and (
        "final_encoder" not in stored or fresh["final_encoder"] == stored["final_encoder"]
    )
    pairs = zip(stored["history"]["losses"], fresh["history"]["losses"], strict=True)
    diffs = [i for i, (a, b) in enumerate(pairs) if a != b]
    steps = stored["history"]["loss_steps"]
    return RerunComparison(
        identical=identical,
        first_loss_difference=steps[diffs[0]] if diffs else None,
        stored_n_mono=list(stored["history"]["n_mono"]),
        rerun_n_mono=list(fresh["history"]["n_mono"]),
        stored_final_loss=float(stored["final"]["loss"]),
        rerun_final_loss=float(fresh["final"]["loss"]),
    )
