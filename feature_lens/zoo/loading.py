"""Find and load the shipped zoo (or any zoo folder): model, tokenizer, dictionary folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import LoadingError
from feature_lens.zoo.dictionaries import DICTIONARIES_DIR, dictionary_hooks
from feature_lens.zoo.model import load_model, read_model_config


def default_zoo_dir() -> Path:
    """The zoo shipped as package data (`feature_lens/zoo/data`)."""
    return Path(__file__).resolve().parent / "data"


def load_zoo_model(
    zoo_dir: Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """The zoo `HookedTransformer` (eval mode) with its tokenizer attached.

    `model.to_tokens("the keys that the man holds")` prepends BOS, as for the training data.
    """
    return load_model(
        Path(zoo_dir) if zoo_dir is not None else default_zoo_dir(), device=device, dtype=dtype
    )


def zoo_dictionary_dirs(zoo_dir: Path | None = None) -> dict[str, Path]:
    """Hook name -> SAE-Lens folder (`cfg.json` + `sae_weights.safetensors`), in forward order.

    Each folder loads with `sae_lens.SAE.load_from_disk(folder)`.
    """
    folder = Path(zoo_dir) if zoo_dir is not None else default_zoo_dir()
    config = read_model_config(folder)
    found = {
        hook: folder / DICTIONARIES_DIR / hook
        for hook in dictionary_hooks(config.n_layers)
        if (folder / DICTIONARIES_DIR / hook / "cfg.json").is_file()
    }
    if not found:
        raise LoadingError(
            f"no dictionaries under {folder / DICTIONARIES_DIR}; "
            "rebuild the zoo with `feature-lens zoo train`"
        )
    return found
