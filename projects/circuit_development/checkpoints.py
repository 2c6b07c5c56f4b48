"""Retrain the zoo model, saving checkpoints and measuring every planted task along the way.

`train_checkpoints` runs `feature_lens.zoo.train.train_model` once with its checkpoint callback: at
each of `eval_steps` the callback scores the four tasks (`feature_lens.zoo.metrics.task_score`, on
held-out prompts) and the held-out loss; at each of `checkpoint_steps` it also saves the weights as
a zoo folder (`step_XXXXX/`, loadable with `load_zoo_model`). Training is deterministic from the
seed on a fixed thread count, so the last checkpoint equals a plain `train_model` run.

The run cannot resume half-way (the optimiser state is not saved), so it writes into a temporary
folder and moves it into place at the end: an interrupted run leaves nothing behind, and a finished
one (`training.json` present, listing every wanted checkpoint) is skipped. When checkpoints are
added to the config, training runs again and only the new step folders are moved in: the run is
deterministic, so the existing ones (and the SAEs trained on them) stay valid.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.loading import load_zoo_model
from feature_lens.zoo.metrics import mean_loss, task_score
from feature_lens.zoo.model import TOKENIZER_DIR, save_model
from feature_lens.zoo.tasks import TASKS
from feature_lens.zoo.tokenizer import load_tokenizer, save_tokenizer
from feature_lens.zoo.train import train_model
from projects.circuit_development.config import ProjectConfig

TRAINING_FILE = "training.json"


def step_dir(root: Path, step: int) -> Path:
    """Folder of the checkpoint after `step` updates."""
    return root / f"step_{step:05d}"


def evaluate_checkpoint(
    model: Any, step: int, n_prompts: int, test_tokens: torch.Tensor
) -> dict[str, Any]:
    """Held-out loss and, per task, top-1 accuracy, pair accuracy and mean logit diff."""
    row: dict[str, Any] = {"step": step, "loss": mean_loss(model, test_tokens)}
    for task in TASKS:
        score = task_score(model, task, n_prompts)
        row[f"{task}_accuracy"] = score.accuracy
        row[f"{task}_pair_accuracy"] = score.pair_accuracy
        row[f"{task}_logit_diff"] = score.logit_diff
    return row


def train_checkpoints(root: Path, config: ProjectConfig, *, progress: bool = False) -> Path:
    """Train once, saving `config.checkpoint_steps` under `root`; return `root/training.json`.

    `training.json` holds the per-step training loss and one evaluation row per `eval_steps`.
    """
    root = Path(root)
    done = root / TRAINING_FILE
    if done.is_file():
        have = set(json.loads(done.read_text())["checkpoint_steps"])
        if have >= set(config.checkpoint_steps):
            return done
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.training-", dir=root.parent))
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        save_tokenizer(tmp / TOKENIZER_DIR)
        tokenizer = load_tokenizer(tmp / TOKENIZER_DIR)
        test_tokens = corpus_tokens(64, seed=config.seed, split="test", n_ctx=config.model.n_ctx)
        rows: list[dict[str, Any]] = []
        saves = set(config.checkpoint_steps)

        def on_checkpoint(step: int, model: Any) -> None:
            with torch.no_grad():
                rows.append(evaluate_checkpoint(model, step, config.n_eval_prompts, test_tokens))
            if step in saves:
                folder = step_dir(tmp, step)
                save_model(model, config.model, folder)
                shutil.copytree(tmp / TOKENIZER_DIR, folder / TOKENIZER_DIR)

        start = time.perf_counter()
        _, losses = train_model(
            config.model,
            config.training,
            tokenizer,
            seed=config.seed,
            progress=progress,
            checkpoint_steps=sorted({*config.eval_steps, *config.checkpoint_steps}),
            on_checkpoint=on_checkpoint,
        )
        record = {
            "model": asdict(config.model),
            "training": asdict(config.training),
            "seed": config.seed,
            "threads": config.threads,
            "checkpoint_steps": list(config.checkpoint_steps),
            "seconds": round(time.perf_counter() - start, 1),
            "train_loss": losses,
            "evaluations": rows,
        }
        (tmp / TRAINING_FILE).write_text(json.dumps(record) + "\n")
        if not root.exists():
            tmp.rename(root)
            return done
        for child in sorted(tmp.iterdir()):
            if child.name != TRAINING_FILE and not (root / child.name).exists():
                child.rename(root / child.name)
        (tmp / TRAINING_FILE).replace(done)  # last, so the step folders it lists are in place
        return done
    finally:
        torch.set_num_threads(threads)
        if tmp.exists():
            shutil.rmtree(tmp)


def load_checkpoint(root: Path, step: int, *, device: str | torch.device = "cpu") -> Any:
    """The `HookedTransformer` saved after `step` updates (eval mode, tokenizer attached)."""
    folder = step_dir(Path(root), step)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no checkpoint at {folder}; run `python -m projects.circuit_development.run` first"
        )
    return load_zoo_model(folder, device=device)
