"""The key numbers of a finished run, from the result CSVs, as `results/summary.json`: when each
task's accuracy jumps, when its circuit becomes faithful and takes its final form, and how much of
each final SAE is matched at every checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from feature_lens.zoo.tasks import TASKS
from projects.circuit_development.figures import read_rows


def first_step(rows: list[dict[str, Any]], key: str, level: float) -> int | None:
    """The first row's step (rows in step order) where `key` reaches `level`, else None."""
    return next((r["step"] for r in rows if r[key] >= level), None)


def largest_jump(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The consecutive pair of rows with the largest increase of `key`."""
    best = max(range(1, len(rows)), key=lambda i: rows[i][key] - rows[i - 1][key])
    return {
        "from_step": rows[best - 1]["step"],
        "to_step": rows[best]["step"],
        "increase": rows[best][key] - rows[best - 1][key],
    }


def summarise(results: Path, *, circuit_size: int = 64, threshold: float = 0.7) -> dict[str, Any]:
    """Compute the summary and write it to `results/summary.json`."""
    accuracy = read_rows(results / "accuracy.csv")
    circuits = read_rows(results / "circuits.csv")
    matching = read_rows(results / "matching.csv")
    tasks: dict[str, Any] = {}
    for task in TASKS:
        rows = [r for r in circuits if r["task"] == task]
        faithful = [r for r in rows if not math.isnan(r[f"faithfulness_{circuit_size}"])]
        tasks[task] = {
            "accuracy_0.5_step": first_step(accuracy, f"{task}_accuracy", 0.5),
            "accuracy_0.9_step": first_step(accuracy, f"{task}_accuracy", 0.9),
            "largest_accuracy_jump": largest_jump(accuracy, f"{task}_accuracy"),
            "faithfulness_0.5_checkpoint": first_step(
                faithful, f"faithfulness_{circuit_size}", 0.5
            ),
            "final_circuit_0.5_checkpoint": first_step(rows, "final_circuit_present", 0.5),
            "per_checkpoint": {
                str(r["step"]): {
                    "logit_diff": round(r["logit_diff"], 3),
                    f"faithfulness_{circuit_size}": round(r[f"faithfulness_{circuit_size}"], 3),
                    "final_circuit_present": round(r["final_circuit_present"], 3),
                    "exact_correlation": round(r["exact_correlation"], 3),
                }
                for r in rows
            },
        }
    matched: dict[str, Any] = {}
    for kind in ("activation", "decoder"):
        for site in sorted({r["site"] for r in matching}):
            chosen = [
                r
                for r in matching
                if r["site"] == site and r["similarity"] == kind and r["threshold"] == threshold
            ]
            matched.setdefault(kind, {})[site] = {
                "to_final": {
                    str(r["step"]): round(r["matched_fraction"], 3)
                    for r in chosen
                    if r["reference"] == "final"
                },
                "second_seed_control": next(
                    round(r["matched_fraction"], 3) for r in chosen if r["reference"] == "control"
                ),
            }
    summary = {
        "circuit_size": circuit_size,
        "match_threshold": threshold,
        "tasks": tasks,
        "matched_fraction": matched,
    }
    (results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
