"""Run the whole pipeline, skipping every stage whose output already exists.

python -m projects.circuit_development.run [--stage checkpoints|saes|matching|circuits|figures]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from projects.circuit_development.checkpoints import train_checkpoints
from projects.circuit_development.config import ProjectConfig
from projects.circuit_development.saes import train_all_saes
from projects.circuit_development.stages import (
    run_circuits,
    run_matching,
    write_sae_results,
    write_training_results,
)

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
RESULTS = HERE / "results"
STAGES = ("checkpoints", "saes", "matching", "circuits", "figures")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the requested stages (all by default), printing their wall time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=STAGES, action="append")
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument(
        "--checkpoint-evals-only",
        action="store_true",
        help="evaluate the tasks (50 prompts) only at the checkpoints: a faster training stage "
        "with the same weights, for runs that need the checkpoints but not the accuracy curve",
    )
    args = parser.parse_args(argv)
    results: Path = args.results
    stages = args.stage or list(STAGES)
    config = ProjectConfig()
    if args.checkpoint_evals_only:
        config = dataclasses.replace(config, eval_steps=config.checkpoint_steps, n_eval_prompts=50)
    torch.set_num_threads(config.threads)
    total = time.perf_counter()
    for stage in stages:
        start = time.perf_counter()
        root = args.artifacts / "checkpoints"
        if stage == "checkpoints":
            train_checkpoints(root, config, progress=True)
            write_training_results(root, results)
        elif stage == "saes":
            train_all_saes(root, config)
            write_sae_results(root, config, results)
        elif stage == "matching":
            run_matching(root, config, results)
        elif stage == "circuits":
            run_circuits(root, config, results)
        elif stage == "figures":
            from projects.circuit_development.figures import draw_all
            from projects.circuit_development.summary import summarise

            draw_all(results)
            summarise(results)
        print(f"[{stage}] {time.perf_counter() - start:.1f} s", flush=True)
    print(f"[total] {time.perf_counter() - total:.1f} s", flush=True)


if __name__ == "__main__":
    main()
