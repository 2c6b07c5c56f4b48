"""Load TransformerLens models: the embedded default, a TransformerLens/hub name, or a local folder.

A local folder is a Hugging Face model folder (`config.json` + safetensors weights, as
`save_pretrained` writes it, optionally with tokenizer files). Its architecture is read from
`config.json` (`feature_lens.loading.hf_config`), its weights go through TransformerLens's own weight
converters and processing, exactly as on the hub path, and the model is named after the folder (or
`model_name`). Without tokenizer files the model takes token ids only; text input then raises
`InputError`. Weights are read from safetensors only: pickled `.bin` checkpoints are refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import InputError, LoadingError
from feature_lens.loading.hf_config import read_hf_config, transformer_lens_config
from feature_lens.loading.hub import ensure_hub_available

#: Names that select the embedded default model.
DEFAULT_MODEL_NAMES = ("zoo", "default", "feature-lens-zoo")

#: TransformerLens's weight processing flags and their defaults (as `from_pretrained`).
DEFAULT_PROCESSING: dict[str, bool] = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
    "refactor_factored_attn_matrices": False,
}

#: Files whose presence means the folder ships a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json")

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def resolve_processing(
    processing: Mapping[str, bool] | None = None, **overrides: bool
) -> dict[str, bool]:
    """The full processing flags: defaults, then `processing`, then keyword `overrides`.

    Raises `InputError` for an unknown flag or a value that is not a bool.
    """
    flags = dict(DEFAULT_PROCESSING)
    for source in (processing or {}, overrides):
        for key, value in source.items():
            if key not in DEFAULT_PROCESSING:
                raise InputError(
                    f"unknown processing flag {key!r}; choose from {', '.join(DEFAULT_PROCESSING)}"
                )
            if not isinstance(value, bool):
                raise InputError(f"processing flag {key!r} must be True or False, got {value!r}")
            flags[key] = value
    return flags


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    processing: Mapping[str, bool] | None = None,
    model_name: str | None = None,
    **processing_flags: bool,
) -> Any:
    """Load a `HookedTransformer`.

    Args:
        name_or_path: None or "zoo" for the embedded default; a folder holding a Hugging Face model
            (architecture from its `config.json`); or a TransformerLens model name such as "gpt2"
            (downloaded through the hub, or read from its cache; fails fast with `OfflineError`
            when offline and not cached).
        device, dtype: where and how to hold the weights.
        processing: TransformerLens weight processing (`fold_ln`, `center_writing_weights`,
            `center_unembed`, `fold_value_biases`, `refactor_factored_attn_matrices`); defaults as
            `HookedTransformer.from_pretrained`. Flags may also be given as keyword arguments. SAEs
            must be used with the processing they were trained on. Flags that do not apply to an
            architecture are turned off as TransformerLens does (e.g. `center_unembed` with a logit
            soft cap); `refactor_factored_attn_matrices` with rotary embeddings is an error.
        model_name: the name the model goes by (`model.cfg.model_name`, checked against SAE
            configs); default: the folder's name, or the TransformerLens name.
    """
    flags = resolve_processing(processing, **processing_flags)
    if name_or_path is None or str(name_or_path) in DEFAULT_MODEL_NAMES:
        from feature_lens.zoo import load_zoo_model

        if processing or processing_flags:
            raise InputError(
                "weight processing flags apply to Hugging Face models; the embedded model is "
                f"loaded as it was trained (got {', '.join({**(processing or {}), **processing_flags})})"
            )
        model = load_zoo_model(device=device, dtype=dtype)
    else:
        path = Path(name_or_path).expanduser()
        if path.exists():
            model = _load_local_folder(
                path,
                device=device,
                dtype=dtype,
                flags=flags,
                name=model_name or path.resolve().name,
            )
        else:
            model = _load_hub_name(str(name_or_path), device=device, dtype=dtype, flags=flags)
    if model_name is not None:
        model.cfg.model_name = model_name
    return model


def _load_hub_name(
    name: str, *, device: str | torch.device, dtype: torch.dtype, flags: dict[str, bool]
) -> Any:
    import transformer_lens.loading_from_pretrained as tl_loading
    from transformer_lens import HookedTransformer

    try:
        official = tl_loading.get_official_model_name(name)
    except ValueError:
        raise LoadingError(
            f"{name!r} is neither a folder nor a model name TransformerLens knows. Give a path to a "
            "Hugging Face model folder, a TransformerLens name such as 'gpt2', or 'zoo' for the "
            "embedded default."
        ) from None
    cache_only = ensure_hub_available(
        official,
        "config.json",
        what=f"model {name!r}",
        local_hint=(
            "On a machine with network, save it with "
            "`AutoModelForCausalLM.from_pretrained(name).save_pretrained(folder)` (and the "
            "tokenizer likewise), copy the folder here and call load_model(folder); or use "
            "load_model('zoo') for the embedded default."
        ),
    )
    kwargs: dict[str, Any] = {**flags, "device": device, "dtype": dtype}
    if cache_only:
        kwargs["local_files_only"] = True
    transformer_class: Any = HookedTransformer  # from_pretrained's **kwargs are untyped
    return transformer_class.from_pretrained(official, **kwargs)


def _load_local_folder(
    path: Path,
    *,
    device: str | torch.device,
    dtype: torch.dtype,
    flags: dict[str, bool],
    name: str,
) -> Any:
    import transformer_lens.loading_from_pretrained as tl_loading
    from transformer_lens import HookedTransformer

    config = read_hf_config(path)
    _check_weight_files(path)
    cfg = transformer_lens_config(
        config, model_name=name, fold_ln=flags["fold_ln"], device=device, dtype=dtype
    )
    flags = _applicable(flags, cfg)
    tokenizer = load_tokenizer(path)
    cfg.tokenizer_name = str(path) if tokenizer is not None else None
    hf_model = _load_hf_weights(path, dtype)
    try:
        state_dict = tl_loading.get_pretrained_state_dict(str(path), cfg, hf_model=hf_model)
    except (KeyError, AttributeError, RuntimeError, ValueError) as error:
        raise LoadingError(
            f"could not convert the weights in {str(path)!r} ({type(error).__name__}: {error}); "
            "check that the weights match config.json."
        ) from None
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(state_dict, **flags)
    return model.to(device)


def _applicable(flags: dict[str, bool], cfg: Any) -> dict[str, bool]:
    """Turn off flags that cannot apply, as `HookedTransformer.from_pretrained` does."""
    flags = dict(flags)
    if getattr(cfg, "output_logits_soft_cap", -1.0) > 0:
        flags["center_unembed"] = False  # soft-capped logits are not shift invariant
    if flags["refactor_factored_attn_matrices"] and cfg.positional_embedding_type == "rotary":
        raise InputError(
            "refactor_factored_attn_matrices does not apply to a model with rotary position "
            f"embeddings ({cfg.original_architecture}); leave it off"
        )
    return flags


def _check_weight_files(path: Path) -> None:
    """Refuse folders whose only weights are pickles (they can run code when loaded)."""
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    if pickles:
        raise LoadingError(
            f"{str(path)!r} holds its weights as a pickle ({', '.join(pickles)}), which feature-lens "
            "does not load because unpickling can run code. Convert it on a machine you trust: "
            "`AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)` writes "
            "model.safetensors."
        )
    raise LoadingError(
        f"{str(path)!r} has no weights: expected model.safetensors (as `save_pretrained` writes)"
    )


def _load_hf_weights(path: Path, dtype: torch.dtype) -> Any:
    from transformers import AutoModelForCausalLM

    model_class: Any = AutoModelForCausalLM  # transformers' stubs leave this untyped
    try:
        return model_class.from_pretrained(
            path, local_files_only=True, dtype=dtype, use_safetensors=True
        ).eval()
    except Exception as error:  # transformers raises many types for a bad folder
        raise LoadingError(
            f"could not read the weights in {str(path)!r} ({type(error).__name__}: "
            f"{_first_line(error)}); the safetensors file may be corrupt or not match config.json."
        ) from None


def load_tokenizer(path: Path) -> Any:
    """The folder's tokenizer, or None when it has no tokenizer files."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    tokenizer_class: Any = AutoTokenizer
    try:
        return tokenizer_class.from_pretrained(path, local_files_only=True)
    except Exception as error:  # tokenizers raises its own exception types for corrupt files
        raise LoadingError(
            f"could not read the tokenizer in {str(path)!r} ({type(error).__name__}: "
            f"{_first_line(error)}); fix or remove the tokenizer files (without them the model "
            "takes token ids only)."
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else ""
    return line[:300]
