"""Train the zoo's dictionaries: an SAE on every layer's residual stream and attention output.

Activations come from an `ActivationBuffer` over fresh training-split corpus batches (BOS
positions skipped: the BOS residual is a constant outlier that no feature needs to explain), and
each SAE is trained with `feature_lens.training.train_sae`, i.e. SAE-Lens's own `SAETrainer`.
Saved in SAE-Lens's on-disk format (`cfg.json` + `sae_weights.safetensors`), one folder per hook.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from feature_lens.training.buffer import ActivationBuffer
from feature_lens.training.sae import train_sae
from feature_lens.zoo.corpus import corpus_batches
from feature_lens.zoo.model import ZOO_MODEL_NAME

DICTIONARIES_DIR = "dictionaries"


@dataclass(frozen=True)
class DictionaryTrainingConfig:
    """How the zoo's SAEs are trained (TopK SAEs, `expansion * d_model` features each)."""

    expansion: int = 8
    k: int = 12
    n_rows: int = 131072
    total_samples: int = 524288
    batch_size: int = 256
    lr: float = 1e-3

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
        sae = train_sae(
            data[hook],
            d_sae=config.expansion * model.cfg.d_model,
            total_samples=config.total_samples,
            architecture="topk",
            k=config.k,
            batch_size=config.batch_size,
            lr=config.lr,
            seed=seed + 100 + i,
            hook_name=hook,
            model_name=ZOO_MODEL_NAME,
        )
        folder = out_dir / hook
        sae.save_model(str(folder))
        folders[hook] = folder
    return folders


def load_dictionary(folder: Path, *, device: str | torch.device = "cpu") -> Any:
    """The SAE-Lens SAE saved in `folder` (`sae_lens.SAE.load_from_disk`)."""
    from sae_lens import SAE

    return SAE.load_from_disk(str(folder), device=str(device))
