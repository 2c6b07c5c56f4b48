"""Rebuild a whole zoo folder from a seed: tokenizer, model, dictionaries, report.

The folder is built in a temporary sibling directory and swapped into place in one atomic step at
the end (`feature_lens.outputs.atomic_folder`), so an interrupted build leaves no partial output and
an existing zoo is never lost. Everything is deterministic from the seed on a fixed
number of CPU threads (`threads`; the result depends on it, through the order of float sums).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from feature_lens.outputs import atomic_folder, check_folder_target
from feature_lens.zoo.dictionaries import (
    DICTIONARIES_DIR,
    DictionaryTrainingConfig,
    train_dictionaries,
)
from feature_lens.zoo.model import TOKENIZER_DIR, ZooModelConfig, save_model
from feature_lens.zoo.report import ZooReport, zoo_report
from feature_lens.zoo.tokenizer import load_tokenizer, save_tokenizer
from feature_lens.zoo.train import ModelTrainingConfig, train_model

BUILD_FILE = "build.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass(frozen=True)
class ZooBuildConfig:
    """Everything that determines a zoo folder."""

    model: ZooModelConfig = field(default_factory=ZooModelConfig)
    training: ModelTrainingConfig = field(default_factory=ModelTrainingConfig)
    dictionaries: DictionaryTrainingConfig = field(default_factory=DictionaryTrainingConfig)
    seed: int = 0
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (written to `build.json`)."""
        return {
            "model": self.model.to_dict(),
            "training": self.training.to_dict(),
            "dictionaries": self.dictionaries.to_dict(),
            "seed": self.seed,
            "threads": self.threads,
        }


def build_zoo(
    out_dir: Path,
    config: ZooBuildConfig,
    *,
    overwrite: bool = False,
    progress: bool = False,
    report_prompts: int = 200,
    report_contexts: int = 256,
) -> ZooReport:
    """Train tokenizer, model and dictionaries into `out_dir` and write the report there.

    Raises `OutputExistsError` if `out_dir` exists and `overwrite` is false, or if it exists and
    was not written by feature-lens (`feature_lens.outputs`).
    """
    out_dir = check_folder_target(Path(out_dir).resolve(), overwrite=overwrite)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with atomic_folder(out_dir, overwrite=overwrite, kind="zoo") as tmp:
            start = time.perf_counter()
            save_tokenizer(tmp / TOKENIZER_DIR)
            tokenizer = load_tokenizer(tmp / TOKENIZER_DIR)
            model, losses = train_model(
                config.model, config.training, tokenizer, seed=config.seed, progress=progress
            )
            save_model(model, config.model, tmp)
            model_seconds = time.perf_counter() - start
            train_dictionaries(
                model,
                config.dictionaries,
                tmp / DICTIONARIES_DIR,
                seed=config.seed,
                progress=progress,
            )
            train_seconds = time.perf_counter() - start
            report = zoo_report(tmp, n_prompts=report_prompts, n_contexts=report_contexts)
            build = {
                **config.to_dict(),
                "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
                "seconds": {"model": round(model_seconds, 1), "total": round(train_seconds, 1)},
            }
            (tmp / BUILD_FILE).write_text(json.dumps(build, indent=2) + "\n")
            (tmp / REPORT_JSON).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
            (tmp / REPORT_MD).write_text(report.to_markdown())
        return report
    finally:
        torch.set_num_threads(threads_before)
