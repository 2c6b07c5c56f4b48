"""Run a list of configs as a sweep, one result file per run, skipping runs already on disk."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.store import (
    make_record,
    run_path,
    save_weights,
    write_json_atomic,
)
from projects.engineering_monosemanticity.train import train


def is_complete(path: Path, config: RunConfig) -> bool:
    """True when ``path`` holds a finished record of exactly ``config``."""
    if not path.exists():
        return False
    try:
        with path.open() as f:
            stored = json.load(f)["config"]
    except (OSError, ValueError, KeyError):
        return False
    return RunConfig.from_dict(stored) == config


def run_sweep(
    sweep_name: str,
    configs: Iterable[RunConfig],
    sweep_vars: tuple[str, ...],
    results_dir: Path,
    device: str | torch.device = "cpu",
    keep_weights: bool = False,
    progress: bool = True,
    threads: int = 1,
) -> list[Path]:
    """Train every config not already stored under ``results_dir/sweep_name``.

    Args:
        sweep_name: folder name for this sweep's files (e.g. ``cpu/LR1``).
        configs: the runs.
        sweep_vars: the swept field names (used in file names and figures).
        results_dir: root of all results.
        device: training device.
        keep_weights: also save each trained model as a ``.pt`` state dict.
        progress: show progress bars.
        threads: torch CPU threads per run (see ``train.train``).

    Returns:
        The JSON paths of all runs of the sweep (new and previously completed).
    """
    configs = list(configs)
    paths = []
    bar = tqdm(configs, desc=sweep_name, disable=not progress)
    for config in bar:
        path = run_path(results_dir, sweep_name, config, sweep_vars)
        paths.append(path)
        if is_complete(path, config):
            continue
        bar.set_postfix_str(path.stem.split("__")[0])
        start = time.perf_counter()
        result = train(config, device=device, progress=progress, threads=threads)
        record = make_record(result, sweep_name, sweep_vars, time.perf_counter() - start)
        record["device"] = str(device)
        if keep_weights:
            save_weights(path.with_suffix(".pt"), result)
        write_json_atomic(path, record)
    return paths
