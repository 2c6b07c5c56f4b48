"""One TopK SAE per checkpoint and site, trained on activations from a shuffling buffer.

For each checkpoint the activations come from `feature_lens.training.ActivationBuffer`, refilled
from a seeded stream of training-split contexts (`corpus_batches`) and served without
replacement; all sites share one row order, and every checkpoint sees the *same* token stream, in
the same shuffled order (same seeds), so two checkpoints' SAEs differ only through the model.
Each SAE is trained by `feature_lens.training.train_sae` (SAE-Lens's own `SAETrainer`) from the
same initialisation seed at every checkpoint. Dead latents are not pruned: the matching decides
what is alive on its shared token set.

Outputs per checkpoint `step_XXXXX/`: one SAE-Lens folder per site, `buffer.json` (the buffer's
bookkeeping) and `quality.json` (the zoo's dictionary metrics on held-out tokens). A checkpoint
whose `quality.json` exists is skipped, so the stage resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor

from feature_lens.training.buffer import ActivationBuffer
from feature_lens.training.sae import train_sae
from feature_lens.zoo.corpus import corpus_batches, corpus_tokens
from feature_lens.zoo.dictionaries import load_dictionary
from feature_lens.zoo.metrics import dictionary_score
from feature_lens.zoo.model import ZOO_MODEL_NAME
from projects.circuit_development.checkpoints import load_checkpoint, step_dir
from projects.circuit_development.config import ProjectConfig, SaeSettings

QUALITY_FILE = "quality.json"
BUFFER_FILE = "buffer.json"


def gather_activations(
    model: Any, hooks: Sequence[str], settings: SaeSettings, *, seed: int
) -> tuple[dict[str, Tensor], dict[str, int]]:
    """`settings.n_rows` shuffled activation rows per hook from a fresh `ActivationBuffer`.

    Returns the rows (hook -> `[n_rows, d_model]`, row i of every hook from the same token) and the
    buffer's counters after the take (tokens_seen, rows_added, rows_served, rows_stored, refills).
    """
    buffer = ActivationBuffer(
        model,
        corpus_batches(
            settings.contexts_per_batch, seed=seed + 1, split="train", n_ctx=model.cfg.n_ctx
        ),
        hooks,
        capacity=settings.buffer_capacity,
        batch_size=min(4096, settings.buffer_capacity // 2),
        seed=seed,
        device="cpu",
    )
    data = buffer.take(settings.n_rows)
    stats = {
        "tokens_seen": buffer.tokens_seen,
        "rows_added": buffer.rows_added,
        "rows_served": buffer.rows_served,
        "rows_stored": buffer.rows_stored,
        "refills": buffer.refills,
        "batches_served": buffer.batches_served,
    }
    return data, stats


def sae_dir(root: Path, step: int, hook: str, *, control: bool = False) -> Path:
    """Folder of the SAE at `hook` for the checkpoint after `step` updates (or its seed control)."""
    return step_dir(root, step) / ("control" if control else "saes") / hook


def train_step_saes(
    model: Any,
    out: Path,
    config: ProjectConfig,
    *,
    sae_seed: int,
    n_quality_contexts: int = 128,
) -> dict[str, Any]:
    """Train and save one SAE per `config.sites` for `model`; return buffer stats and quality."""
    data, stats = gather_activations(model, config.sites, config.saes, seed=config.seed)
    test_tokens = corpus_tokens(n_quality_contexts, seed=config.seed, split="test")
    quality: dict[str, Any] = {}
    for i, hook in enumerate(config.sites):
        sae = train_sae(
            data[hook],
            d_sae=config.saes.expansion * model.cfg.d_model,
            total_samples=config.saes.total_samples,
            architecture="topk",
            k=config.saes.k,
            batch_size=config.saes.batch_size,
            lr=config.saes.lr,
            seed=sae_seed + i,
            hook_name=hook,
            model_name=ZOO_MODEL_NAME,
        )
        sae.save_model(str(out / hook))
        quality[hook] = asdict(dictionary_score(model, sae, test_tokens))
    return {"buffer": stats, "quality": quality}


def train_all_saes(root: Path, config: ProjectConfig, *, progress: bool = True) -> None:
    """SAEs at every checkpoint (skipping finished ones), plus a second-seed control at the last."""
    last = max(config.checkpoint_steps)
    jobs = [(step, False) for step in config.checkpoint_steps] + [(last, True)]
    for step, control in jobs:
        folder = step_dir(root, step) / ("control" if control else "saes")
        if (folder / QUALITY_FILE).is_file():
            continue
        if folder.exists():
            shutil.rmtree(folder)  # a half-written step from an interrupted run
        model = load_checkpoint(root, step)
        record = train_step_saes(
            model, folder, config, sae_seed=config.seed + (200 if control else 100)
        )
        (folder / BUFFER_FILE).write_text(json.dumps(record["buffer"], indent=2) + "\n")
        (folder / QUALITY_FILE).write_text(json.dumps(record["quality"], indent=2) + "\n")
        if progress:
            fves = " ".join(f"{q['fve']:.3f}" for q in record["quality"].values())
            print(f"saes step {step}{' (control)' if control else ''}: FVE {fves}", flush=True)


def load_step_saes(
    root: Path, step: int, sites: Sequence[str], *, control: bool = False
) -> dict[str, Any]:
    """Hook -> SAE-Lens SAE of the checkpoint after `step` updates."""
    return {hook: load_dictionary(sae_dir(root, step, hook, control=control)) for hook in sites}


def read_quality(root: Path, step: int, *, control: bool = False) -> dict[str, Any]:
    """The stored dictionary metrics of one checkpoint's SAEs (hook -> DictionaryScore fields)."""
    folder = step_dir(root, step) / ("control" if control else "saes")
    return json.loads((folder / QUALITY_FILE).read_text())
