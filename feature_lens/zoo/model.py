"""The zoo transformer: its configuration, construction, and safetensors save/load.

On disk a zoo folder holds `model.json` (the `ZooModelConfig`), `model.safetensors` (the
TransformerLens state dict, float32), the tokenizer folder `tokenizer/`, and one folder per
dictionary under `dictionaries/`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import LoadingError
from feature_lens.typed import manual_seed
from feature_lens.zoo.grammar import vocabulary

ZOO_MODEL_NAME = "feature-lens-zoo"
MODEL_CONFIG_FILE = "model.json"
MODEL_WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


@dataclass(frozen=True)
class ZooModelConfig:
    """Shape of the zoo transformer (attention + GELU MLPs, pre-LayerNorm, learned positions)."""

    n_layers: int = 3
    d_model: int = 64
    n_heads: int = 4
    d_mlp: int = 256
    n_ctx: int = 48

    def to_dict(self) -> dict[str, int]:
        """Plain JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ZooModelConfig:
        """Inverse of `to_dict`."""
        return cls(**{k: int(v) for k, v in data.items()})


def hooked_config(
    config: ZooModelConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """The `HookedTransformerConfig` of a zoo model."""
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        n_layers=config.n_layers,
        d_model=config.d_model,
        n_heads=config.n_heads,
        d_head=config.d_model // config.n_heads,
        d_mlp=config.d_mlp,
        n_ctx=config.n_ctx,
        d_vocab=len(vocabulary()),
        act_fn="gelu",
        normalization_type="LN",
        positional_embedding_type="standard",
        model_name=ZOO_MODEL_NAME,
        default_prepend_bos=True,
        device=str(device),
        dtype=dtype,
    )


def build_model(
    config: ZooModelConfig,
    tokenizer: Any = None,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Any:
    """A freshly initialised zoo `HookedTransformer` (initialisation seeded by `seed`)."""
    import warnings

    from transformer_lens import HookedTransformer

    manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return HookedTransformer(
            hooked_config(config, device=device, dtype=dtype), tokenizer=tokenizer
        )


def save_model(model: Any, config: ZooModelConfig, folder: Path) -> None:
    """Write `model.json` and `model.safetensors` (parameters only, float32) into `folder`."""
    from feature_lens.typed import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    tensors = {
        name: param.detach().to("cpu", torch.float32).contiguous().clone()
        for name, param in model.named_parameters()
    }
    save_file(tensors, str(folder / MODEL_WEIGHTS_FILE), metadata={"model_name": ZOO_MODEL_NAME})


def read_model_config(folder: Path) -> ZooModelConfig:
    """The `ZooModelConfig` stored in a zoo folder."""
    path = folder / MODEL_CONFIG_FILE
    if not path.is_file():
        raise LoadingError(
            f"{path} not found: {folder} is not a zoo folder "
            "(rebuild one with `feature-lens zoo train`)"
        )
    return ZooModelConfig.from_dict(json.loads(path.read_text()))


def load_model(
    folder: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """The zoo `HookedTransformer` saved in `folder`, with its tokenizer attached."""
    from feature_lens.typed import load_file
    from feature_lens.zoo.tokenizer import load_tokenizer

    config = read_model_config(folder)
    tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
    model = build_model(config, tokenizer, device=device, dtype=dtype)
    state = load_file(str(folder / MODEL_WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing_params = [k for k in missing if k in dict(model.named_parameters())]
    if missing_params or unexpected:
        raise LoadingError(
            f"{folder / MODEL_WEIGHTS_FILE} does not match {folder / MODEL_CONFIG_FILE}: "
            f"missing {missing_params[:5]}, unexpected {list(unexpected)[:5]}"
        )
    model.eval()
    return model
