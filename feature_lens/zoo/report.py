"""The zoo's report: every metric recomputed from the files of a zoo folder."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.metrics import DictionaryScore, TaskScore, dictionary_score, mean_loss
from feature_lens.zoo.model import load_model, read_model_config
from feature_lens.zoo.tasks import TASKS


@dataclass(frozen=True)
class ZooReport:
    """Metrics of one zoo folder, all measured on held-out ("test" split) data.

    test_loss: next-token loss of the model (nats/token) on held-out corpus contexts.
    """

    model: dict[str, int]
    n_parameters: int
    test_loss: float
    tasks: dict[str, TaskScore]
    dictionaries: dict[str, DictionaryScore]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)

    def to_markdown(self) -> str:
        """The report as Markdown tables."""
        lines = [
            f"model: {json.dumps(self.model)}, {self.n_parameters:,} parameters",
            f"held-out loss: {self.test_loss:.4f} nats/token",
            "",
            "| task | n | top-1 accuracy | logit(correct) > logit(wrong) | logit diff "
            "| corrupted logit diff |",
            "|---|---|---|---|---|---|",
        ]
        for s in self.tasks.values():
            lines.append(
                f"| {s.task} | {s.n} | {s.accuracy:.3f} | {s.pair_accuracy:.3f} "
                f"| {s.logit_diff:.2f} | {s.corrupted_logit_diff:.2f} |"
            )
        lines += [
            "",
            "| dictionary | d_sae | FVE | L0 | dead | Δloss (spliced, no error term) "
            "| loss recovered |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in self.dictionaries.values():
            lines.append(
                f"| {d.hook_name} | {d.d_sae} | {d.fve:.3f} | {d.l0:.1f} | {d.dead_fraction:.3f} "
                f"| {d.delta_loss:+.4f} | {d.loss_recovered:.3f} |"
            )
        return "\n".join(lines) + "\n"


def zoo_report(
    zoo_dir: Path,
    *,
    n_prompts: int = 200,
    n_contexts: int = 256,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> ZooReport:
    """Load the model and dictionaries of `zoo_dir` and measure everything on held-out data.

    Args:
        n_prompts: held-out prompts per task.
        n_contexts: held-out corpus contexts (each `n_ctx` tokens) for losses and SAE metrics.
    """
    from feature_lens.zoo.dictionaries import load_dictionary
    from feature_lens.zoo.loading import zoo_dictionary_dirs
    from feature_lens.zoo.metrics import task_score

    config = read_model_config(zoo_dir)
    model = load_model(zoo_dir, device=device)
    tokens = corpus_tokens(n_contexts, seed=seed, split="test", n_ctx=config.n_ctx)
    tasks = {task: task_score(model, task, n_prompts, seed=seed) for task in TASKS}
    dictionaries = {
        hook: dictionary_score(model, load_dictionary(folder, device=device), tokens)
        for hook, folder in zoo_dictionary_dirs(zoo_dir).items()
    }
    return ZooReport(
        model=config.to_dict(),
        n_parameters=sum(p.numel() for p in model.parameters()),
        test_loss=mean_loss(model, tokens),
        tasks=tasks,
        dictionaries=dictionaries,
    )
