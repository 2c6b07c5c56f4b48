"""Train the zoo's dictionaries: an SAE on every layer's residual stream and attention output.

Activations come from an `ActivationBuffer` over fresh training-split corpus batches (BOS
positions skipped: the BOS residual is a constant outlier that no feature needs to explain), and
each SAE is trained with `feature_lens.training.train_sae`, i.e. SAE-Lens's own `SAETrainer`
(TopK SAEs). Then latents that fire on fewer than `min_firing_rate` of the training activations
are removed: on this low-entropy corpus SAE-Lens's aux-k loss leaves 10-30% of the latents dead
(and a few nearly so), and a dead latent is only noise in attribution graphs and dashboards. So
`d_sae` of a shipped SAE is the number of kept latents, somewhat below `expansion * d_model`. Saved in SAE-Lens's on-disk format
(`cfg.json` + `sae_weights.safetensors`), one folder per hook.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.training.buffer import ActivationBuffer
from feature_lens.training.sae import train_sae
from feature_lens.zoo.corpus import corpus_batches
from feature_lens.zoo.model import ZOO_MODEL_NAME

DICTIONARIES_DIR = "dictionaries"
SAE_CONFIG = "cfg.json"
SAE_WEIGHTS = "sae_weights.safetensors"


@dataclass(frozen=True)
class DictionaryTrainingConfig:
    """How the zoo's SAEs are trained: TopK SAEs with `expansion * d_model` latents before
    pruning (residual stream) and `attn_expansion * d_model` (attention outputs)."""

    expansion: int = 8
    k: int = 16
    attn_expansion: int = 4
    attn_k: int = 12
    n_rows: int = 131072
    total_samples: int = 524288
    batch_size: int = 256
    lr: float = 1e-3
    min_firing_rate: float = 2e-4

    def to_dict(self) -> dict[str, float]:
        """Plain JSON-able form."""
        return asdict(self)


def dictionary_hooks(n_layers: int) -> list[str]:
    """Hook names that get an SAE, in forward order: each layer's attention output, then resid."""
    hooks: list[str] = []
    for layer in range(n_layers):
        hooks += [f"blocks.{layer}.hook_attn_out", f"blocks.{layer}.hook_resid_post"]
    return hooks


def train_dictionaries(
    model: Any,
    config: DictionaryTrainingConfig,
    out_dir: Path,
    *,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Path]:
    """Train one SAE per hook of `dictionary_hooks` and save each under `out_dir/<hook>/`.

    Returns hook name -> folder, in forward order.
    """
    hooks = dictionary_hooks(model.cfg.n_layers)
    n_ctx = model.cfg.n_ctx
    contexts_per_batch = 64
    buffer = ActivationBuffer(
        model,
        corpus_batches(contexts_per_batch, seed=seed + 1, split="train", n_ctx=n_ctx),
        hooks,
        capacity=config.n_rows,
        batch_size=min(4096, config.n_rows // 2),
        seed=seed,
        device="cpu",
    )
    data = buffer.take(config.n_rows)
    folders: dict[str, Path] = {}
    for i, hook in enumerate(tqdm(hooks, desc="dictionaries", disable=not progress)):
        attn = hook.endswith("hook_attn_out")
        sae = train_sae(
            data[hook],
            d_sae=(config.attn_expansion if attn else config.expansion) * model.cfg.d_model,
            total_samples=config.total_samples,
            architecture="topk",
            k=config.attn_k if attn else config.k,
            batch_size=config.batch_size,
            lr=config.lr,
            seed=seed + 100 + i,
            hook_name=hook,
            model_name=ZOO_MODEL_NAME,
        )
        folder = out_dir / hook
        rates = firing_rates(sae, data[hook])
        save_pruned(sae, rates >= config.min_firing_rate, folder)
        folders[hook] = folder
    return folders


@torch.no_grad()
def firing_rates(sae: Any, activations: Tensor, batch_size: int = 8192) -> Tensor:
    """Fraction `[d_sae]` of the rows of `activations` on which each latent fires (> 0)."""
    counts = torch.zeros(int(sae.cfg.d_sae), device=activations.device)
    for start in range(0, activations.shape[0], batch_size):
        counts += (sae.encode(activations[start : start + batch_size]) > 0).sum(0)
    return counts / activations.shape[0]


def save_pruned(sae: Any, keep: Tensor, folder: Path) -> Any:
    """Write `sae` restricted to the latents in `keep` to `folder`; return it as loaded back.

    Every parameter with a `d_sae` axis (`W_enc` columns, `W_dec` rows, `b_enc`, and a JumpReLU
    `threshold`) is sliced; the input-side parameters are unchanged, so each kept latent computes
    exactly what it did before.
    """
    from feature_lens.typed import save_file

    d_sae = int(sae.cfg.d_sae)
    index = keep.nonzero().squeeze(1).cpu()
    state: dict[str, Tensor] = {}
    for name, tensor in sae.state_dict().items():
        value = tensor.detach().cpu()
        if name == "W_enc":
            value = value[:, index]
        elif value.ndim >= 1 and value.shape[0] == d_sae:
            value = value[index]
        state[name] = value.contiguous()
    sae.save_model(str(folder))
    config = json.loads((folder / SAE_CONFIG).read_text())
    config["d_sae"] = len(index)
    config["metadata"]["pruned_dead_latents"] = d_sae - len(index)
    (folder / SAE_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_file(state, str(folder / SAE_WEIGHTS))
    return load_dictionary(folder)


def load_dictionary(folder: Path, *, device: str | torch.device = "cpu") -> Any:
    """The SAE-Lens SAE saved in `folder` (`sae_lens.SAE.load_from_disk`)."""
    from sae_lens import SAE

    return cast(Any, SAE.load_from_disk(str(folder), device=str(device)))
