"""`feature-lens zoo train` and `feature-lens zoo report`: rebuild the embedded default, or
recompute the metrics of a zoo folder (the shipped one by default)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `zoo` command and its `train` / `report` subcommands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "zoo", help="the embedded default model: rebuild it, or report its metrics"
    )
    zoo_commands = parser.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND", required=True)

    train = zoo_commands.add_parser(
        "train",
        help="rebuild model, tokenizer and SAEs deterministically from a seed into a new folder",
    )
    train.add_argument(
        "out", type=Path, nargs="?", default=None,
        help="output folder (default: ./feature-lens-zoo-<seed>); must not exist",
    )  # fmt: skip
    train.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    train.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads for torch; the weights depend on it (default 1, as shipped)",
    )  # fmt: skip
    train.add_argument("--steps", type=int, default=None, help="model training steps")
    train.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    train.set_defaults(func=run_train)

    report = zoo_commands.add_parser(
        "report", help="recompute the metrics of a zoo folder (default: the shipped one)"
    )
    report.add_argument("zoo_dir", type=Path, nargs="?", default=None, help="zoo folder")
    report.add_argument("--prompts", type=int, default=200, help="held-out prompts per task")
    report.add_argument("--contexts", type=int, default=256, help="held-out corpus contexts")
    report.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    report.set_defaults(func=run_report)


def run_train(args: argparse.Namespace) -> int:
    """Build a zoo folder; print its report."""
    from dataclasses import replace

    from feature_lens.errors import InputError
    from feature_lens.outputs import check_folder_target
    from feature_lens.zoo.build import ZooBuildConfig, build_zoo

    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    config = ZooBuildConfig(seed=args.seed, threads=args.threads)
    if args.steps is not None:
        if args.steps < 1:
            raise InputError(f"--steps must be at least 1, got {args.steps}")
        config = replace(config, training=replace(config.training, steps=args.steps))
    out = args.out if args.out is not None else Path(f"feature-lens-zoo-{args.seed}")
    check_folder_target(out, overwrite=args.overwrite)
    start = time.perf_counter()
    report = build_zoo(out, config, overwrite=args.overwrite, progress=True)
    print(report.to_markdown())
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Print the metrics of a zoo folder, recomputed from its files."""
    from feature_lens.zoo.loading import default_zoo_dir
    from feature_lens.zoo.report import zoo_report

    zoo_dir = args.zoo_dir if args.zoo_dir is not None else default_zoo_dir()
    report = zoo_report(zoo_dir, n_prompts=args.prompts, n_contexts=args.contexts)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_markdown())
    return 0
