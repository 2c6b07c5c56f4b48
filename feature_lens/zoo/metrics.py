"""Metrics of a zoo: the model's loss and task accuracies, and each dictionary's quality.

Everything is recomputed by running the model on held-out ("test" split) data; nothing is read from
a stored report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from feature_lens.zoo.tasks import task_prompts


@dataclass(frozen=True)
class TaskScore:
    """Accuracy of the model on one task's held-out prompts.

    accuracy: fraction where the correct answer is the top-1 prediction over the whole vocabulary.
    pair_accuracy: fraction where logit(correct) > logit(wrong).
    logit_diff: mean logit(correct) - logit(wrong) on clean prompts (nats).
    corrupted_logit_diff: the same on the corrupted prompts (should be negative).
    """

    task: str
    n: int
    accuracy: float
    pair_accuracy: float
    logit_diff: float
    corrupted_logit_diff: float


@torch.no_grad()
def task_score(model: Any, task: str, n: int = 200, *, seed: int = 0) -> TaskScore:
    """Score `model` on `n` held-out prompts of `task`."""
    device = model.cfg.device
    prompts = task_prompts(task, n, seed=seed, split="test")
    rows = torch.arange(n, device=device)
    correct, wrong = prompts.correct.to(device), prompts.wrong.to(device)
    clean_logits = model(prompts.clean.to(device))[:, -1]
    bad_logits = model(prompts.corrupted.to(device))[:, -1]
    clean_diff = clean_logits[rows, correct] - clean_logits[rows, wrong]
    bad_diff = bad_logits[rows, correct] - bad_logits[rows, wrong]
    return TaskScore(
        task=task,
        n=n,
        accuracy=(clean_logits.argmax(-1) == correct).float().mean().item(),
        pair_accuracy=(clean_diff > 0).float().mean().item(),
        logit_diff=clean_diff.mean().item(),
        corrupted_logit_diff=bad_diff.mean().item(),
    )


@torch.no_grad()
def mean_loss(model: Any, tokens: Int[Tensor, "batch seq"], batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats per token) of `model` over `tokens`."""
    total, count = 0.0, 0
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size].to(model.cfg.device)
        losses = model(batch, return_type="loss", loss_per_token=True)
        total += losses.sum().item()
        count += losses.numel()
    return total / count


@dataclass(frozen=True)
class DictionaryScore:
    """Quality of one SAE on held-out tokens (BOS positions excluded throughout).

    fve: fraction of variance explained, 1 - sum |x - x_hat|^2 / sum |x - mean(x)|^2.
    l0: mean number of active features per token.
    dead_fraction: fraction of features that never fire on the held-out tokens.
    clean_loss, spliced_loss, zero_loss: next-token loss (nats/token) of the model as is, with
        the SAE's reconstruction in place of the activation (no error term), and with the
        activation zeroed; delta_loss = spliced_loss - clean_loss.
    loss_recovered: (zero_loss - spliced_loss) / (zero_loss - clean_loss).
    """

    hook_name: str
    d_sae: int
    n_tokens: int
    fve: float
    l0: float
    dead_fraction: float
    clean_loss: float
    spliced_loss: float
    zero_loss: float
    delta_loss: float
    loss_recovered: float


@torch.no_grad()
def dictionary_score(model: Any, sae: Any, tokens: Int[Tensor, "batch seq"]) -> DictionaryScore:
    """Score an SAE-Lens SAE attached (by its `metadata.hook_name`) to `model` on `tokens`."""
    hook = str(sae.cfg.metadata.hook_name)
    tokens = tokens.to(model.cfg.device)
    _, cache = model.run_with_cache(tokens, names_filter=hook)
    x = cache[hook][:, 1:].reshape(-1, cache[hook].shape[-1])
    acts = sae.encode(x)
    recon = sae.decode(acts)
    fve = 1.0 - ((x - recon) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    fired = acts > 0

    def splice(activation: Tensor, hook: Any) -> Tensor:
        out = activation.clone()
        out[:, 1:] = sae.decode(sae.encode(activation[:, 1:]))
        return out

    def zero(activation: Tensor, hook: Any) -> Tensor:
        out = activation.clone()
        out[:, 1:] = 0.0
        return out

    clean = mean_loss(model, tokens)
    with model.hooks(fwd_hooks=[(hook, splice)]):
        spliced = mean_loss(model, tokens)
    with model.hooks(fwd_hooks=[(hook, zero)]):
        zeroed = mean_loss(model, tokens)
    return DictionaryScore(
        hook_name=hook,
        d_sae=int(sae.cfg.d_sae),
        n_tokens=x.shape[0],
        fve=fve.item(),
        l0=fired.float().sum(-1).mean().item(),
        dead_fraction=(~fired.any(0)).float().mean().item(),
        clean_loss=clean,
        spliced_loss=spliced,
        zero_loss=zeroed,
        delta_loss=spliced - clean,
        loss_recovered=(zeroed - spliced) / (zeroed - clean),
    )
