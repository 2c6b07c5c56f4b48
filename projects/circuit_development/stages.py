"""The pipeline's stages after training: SAE matching across checkpoints and circuits per
checkpoint, each writing its small results (CSV/JSON) and skipping work already on disk."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from typing import Any

import torch

from feature_lens.lens import Lens
from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.tasks import TASKS
from projects.circuit_development.checkpoints import TRAINING_FILE, load_checkpoint
from projects.circuit_development.circuits import circuit_persistence, task_circuit
from projects.circuit_development.config import ProjectConfig
from projects.circuit_development.matching import (
    SIMILARITIES,
    Matching,
    feature_activations,
    live_features,
    match_features,
)
from projects.circuit_development.saes import load_step_saes, read_quality

PAIRS_FILE = "matching_pairs.json"
PERSISTENCE_THRESHOLD = 0.5  # activation correlation for "the same feature" in circuit tracking


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write dict rows (same keys) as CSV, floats rounded to 5 significant digits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.5g}" if isinstance(v, float) else v for k, v in row.items()})


def write_training_results(root: Path, results: Path) -> None:
    """`accuracy.csv` (one row per evaluation step) and `train_loss.csv` (every 10th step)."""
    record = json.loads((root / TRAINING_FILE).read_text())
    write_csv(results / "accuracy.csv", record["evaluations"])
    losses = record["train_loss"]
    write_csv(
        results / "train_loss.csv",
        [{"step": s + 1, "loss": losses[s]} for s in range(0, len(losses), 10)],
    )


def write_sae_results(root: Path, config: ProjectConfig, results: Path) -> None:
    """`saes.csv`: each checkpoint's SAE quality per site (FVE, L0, dead, loss recovered)."""
    rows: list[dict[str, Any]] = []
    last = max(config.checkpoint_steps)
    for step, control in [(s, False) for s in config.checkpoint_steps] + [(last, True)]:
        for hook, q in read_quality(root, step, control=control).items():
            rows.append(
                {
                    "step": step,
                    "control": int(control),
                    "site": hook,
                    **{k: q[k] for k in ("fve", "l0", "dead_fraction", "delta_loss")},
                    "loss_recovered": q["loss_recovered"],
                }
            )
    write_csv(results / "saes.csv", rows)


def _pairs(matching: Matching) -> list[list[float]]:
    return [
        [int(i), int(j), round(float(s), 4)]
        for i, j, s in zip(matching.rows, matching.cols, matching.similarity, strict=True)
    ]


def run_matching(root: Path, config: ProjectConfig, results: Path) -> None:
    """Match every checkpoint's SAEs to the final ones and to the next checkpoint's.

    Writes `results/matching.csv` (one row per site, step, reference, similarity kind and
    threshold) and `root/matching_pairs.json` (all assigned pairs with their similarity).
    """
    if (results / "matching.csv").is_file() and (root / PAIRS_FILE).is_file():
        return
    steps = sorted(config.checkpoint_steps)
    tokens = corpus_tokens(config.n_match_contexts, seed=config.seed, split="test")
    acts: dict[tuple[int, bool], dict[str, torch.Tensor]] = {}
    decoders: dict[tuple[int, bool], dict[str, torch.Tensor]] = {}
    for step, control in [(s, False) for s in steps] + [(steps[-1], True)]:
        model = load_checkpoint(root, step)
        saes = load_step_saes(root, step, config.sites, control=control)
        acts[step, control] = {
            h: feature_activations(model, sae, h, tokens) for h, sae in saes.items()
        }
        decoders[step, control] = {h: sae.W_dec.detach() for h, sae in saes.items()}
    comparisons: list[tuple[str, tuple[int, bool], tuple[int, bool]]] = []
    for a, b in itertools.pairwise(steps):
        comparisons.append(("next", (a, False), (b, False)))
    comparisons += [("final", (s, False), (steps[-1], False)) for s in steps]
    comparisons.append(("control", (steps[-1], True), (steps[-1], False)))
    rows: list[dict[str, Any]] = []
    pairs: dict[str, dict[str, dict[str, list[list[float]]]]] = {k: {} for k in SIMILARITIES}
    for reference, a, b in comparisons:
        for site in config.sites:
            for kind in SIMILARITIES:
                matching = match_features(
                    kind,
                    W_dec_a=decoders[a][site],
                    W_dec_b=decoders[b][site],
                    acts_a=acts[a][site],
                    acts_b=acts[b][site],
                )
                key = f"{a[0]}{'c' if a[1] else ''}->{b[0]}"
                pairs[kind].setdefault(site, {})[key] = _pairs(matching)
                for threshold in config.match_thresholds:
                    rows.append(
                        {
                            "site": site,
                            "step": a[0],
                            "other_step": b[0],
                            "reference": reference,
                            "similarity": kind,
                            "threshold": threshold,
                            "matched_fraction": matching.matched_fraction(threshold),
                            "n_live": matching.n_live_a,
                            "n_live_reference": matching.n_live_b,
                            "mean_similarity": float(matching.similarity.mean())
                            if len(matching.similarity)
                            else 0.0,
                        }
                    )
    live_rows = [
        {
            "site": site,
            "step": step,
            "control": int(control),
            "live_fraction": float(live_features(acts[step, control][site], 8).float().mean()),
        }
        for (step, control) in acts
        for site in config.sites
    ]
    write_csv(results / "live_features.csv", live_rows)
    write_csv(results / "matching.csv", rows)
    (root / PAIRS_FILE).write_text(json.dumps(pairs) + "\n")


def _matches(
    pairs: dict[str, Any], key: str, threshold: float = PERSISTENCE_THRESHOLD
) -> dict[str, dict[int, int]]:
    """Site -> {index -> index} of the activation-correlation pairs of `key` above `threshold`."""
    return {
        site: {int(i): int(j) for i, j, s in by_key[key] if s >= threshold}
        for site, by_key in pairs["activation"].items()
    }


def _nodes_for(faithfulness: dict[str, float], level: float) -> int:
    """The smallest circuit size whose faithfulness reaches `level` (-1 if none does)."""
    sizes = sorted(int(k) for k, v in faithfulness.items() if v >= level)
    return sizes[0] if sizes else -1


def run_circuits(
    root: Path, config: ProjectConfig, results: Path, *, progress: bool = True
) -> None:
    """Every task's circuit at every checkpoint (cached per step), then `results/circuits.csv`
    (faithfulness, exact check, persistence through the matching) and `results/circuits.json`."""
    steps = sorted(config.checkpoint_steps)
    cache = root / "circuits"
    cache.mkdir(parents=True, exist_ok=True)
    records: dict[int, dict[str, Any]] = {}
    for step in steps:
        path = cache / f"step_{step:05d}.json"
        if not path.is_file():
            model = load_checkpoint(root, step)
            lens = Lens(model, list(load_step_saes(root, step, config.sites).values()))
            record = {
                task: task_circuit(lens, task, config.circuits, seed=config.seed) for task in TASKS
            }
            path.write_text(json.dumps(record) + "\n")
            if progress:
                faith = " ".join(
                    f"{t}={r['faithfulness'][str(config.circuits.circuit_size)]:.2f}"
                    for t, r in record.items()
                )
                print(
                    f"circuits step {step}: faithfulness@{config.circuits.circuit_size} {faith}",
                    flush=True,
                )
        records[step] = json.loads(path.read_text())
    final = steps[-1]
    control_path = cache / f"step_{final:05d}_control.json"
    if not control_path.is_file():
        model = load_checkpoint(root, final)
        saes = load_step_saes(root, final, config.sites, control=True)
        lens = Lens(model, list(saes.values()))
        control_record = {
            task: task_circuit(lens, task, config.circuits, seed=config.seed) for task in TASKS
        }
        control_path.write_text(json.dumps(control_record) + "\n")
    control = json.loads(control_path.read_text())
    pairs = json.loads((root / PAIRS_FILE).read_text())
    ceiling = [
        {
            "task": task,
            "final_circuit_present": circuit_persistence(
                control[task]["circuit"],
                records[final][task]["circuit"],
                _matches(pairs, f"{final}c->{final}"),
            )["persisted"],
            f"faithfulness_{config.circuits.circuit_size}": control[task]["faithfulness"][
                str(config.circuits.circuit_size)
            ],
        }
        for task in TASKS
    ]
    write_csv(results / "circuits_control.csv", ceiling)
    rows: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        for task in TASKS:
            record = records[step][task]
            to_final = circuit_persistence(
                record["circuit"],
                records[final][task]["circuit"],
                _matches(pairs, f"{step}->{final}"),
            )
            row: dict[str, Any] = {
                "step": step,
                "task": task,
                "logit_diff": record["metric_clean"],
                "corrupted_logit_diff": record["metric_corrupted"],
                "full_metric": record["full_metric"],
                "empty_metric": record["empty_metric"],
                **{f"faithfulness_{k}": v for k, v in record["faithfulness"].items()},
                **{f"mean_faithfulness_{k}": v for k, v in record["mean_faithfulness"].items()},
                "mean_empty_metric": record["mean_empty_metric"],
                "nodes_for_0.8": _nodes_for(record["faithfulness"], 0.8),
                "error_share": record["error_share"],
                "exact_correlation": record["exact"]["correlation"],
                "exact_top_overlap": record["exact"]["top_overlap"],
                "exact_sign_agreement": record["exact"]["sign_agreement"],
                "circuit_features": len(record["circuit"]),
                "final_circuit_present": to_final["persisted"],
                "final_circuit_matched": to_final["matched"],
            }
            if index > 0:
                previous = steps[index - 1]
                since = circuit_persistence(
                    records[previous][task]["circuit"],
                    record["circuit"],
                    _matches(pairs, f"{previous}->{step}"),
                )
                row |= {
                    "persisted_from_previous": since["persisted"],
                    "new_since_previous": since["new"],
                }
            else:
                row |= {"persisted_from_previous": float("nan"), "new_since_previous": float("nan")}
            rows.append(row)
    write_csv(results / "circuits.csv", rows)
    compact = {
        str(step): {task: {"circuit": records[step][task]["circuit"]} for task in TASKS}
        for step in steps
    }
    (results / "circuits.json").write_text(json.dumps(compact) + "\n")
