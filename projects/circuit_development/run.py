"""Run the whole pipeline, skipping every stage whose output already exists.

python -m projects.circuit_development.run [--stage checkpoints|saes|matching|circuits|figures]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    stages = args.stage or list(STAGES)
    config = ProjectConfig()
    torch.set_num_threads(config.threads)
    for stage in stages:
        start = time.perf_counter()
        root = ARTIFACTS / "checkpoints"
        if stage == "checkpoints":
            train_checkpoints(root, config, progress=True)
            write_training_results(root, RESULTS)
        elif stage == "saes":
            train_all_saes(root, config)
            write_sae_results(root, config, RESULTS)
        elif stage == "matching":
            run_matching(root, config, RESULTS)
        elif stage == "circuits":
            run_circuits(root, config, RESULTS)
        elif stage == "figures":
            from projects.circuit_development.figures import draw_all

            draw_all(RESULTS)
        print(f"[{stage}] {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
