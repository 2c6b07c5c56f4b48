"""Load TransformerLens models: the embedded default, a TransformerLens/hub name, or a local folder.

A local folder is a Hugging Face model folder (`config.json` + weights, as `save_pretrained` writes
it, optionally with tokenizer files). It goes through TransformerLens's own config and weight
converters, exactly like the hub path, so a model loaded from a folder equals the same model loaded
by name.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import LoadingError
from feature_lens.loading.hub import ensure_hub_available

#: Names that select the embedded default model.
DEFAULT_MODEL_NAMES = ("zoo", "default", "feature-lens-zoo")

#: TransformerLens's weight processing, applied on both the hub and the local-folder path.
DEFAULT_PROCESSING: dict[str, bool] = {
    "fold_ln": True,
    "center_writing_weights": True,
    "center_unembed": True,
    "fold_value_biases": True,
}


def load_model(
    name_or_path: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **processing: Any,
) -> Any:
    """Load a `HookedTransformer`.

    Args:
        name_or_path: None or "zoo" for the embedded default; a folder holding a Hugging Face model;
            or a TransformerLens model name such as "gpt2" (downloaded through the hub, or read from
            its cache; fails fast with `OfflineError` when offline and not cached).
        device, dtype: where and how to hold the weights.
        processing: TransformerLens weight-processing flags (`fold_ln`, `center_writing_weights`,
            `center_unembed`, `fold_value_biases`); defaults as `HookedTransformer.from_pretrained`.
            SAEs must be used with the processing they were trained on.
    """
    if name_or_path is None or str(name_or_path) in DEFAULT_MODEL_NAMES:
        from feature_lens.zoo import load_zoo_model

        return load_zoo_model(device=device, dtype=dtype)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return _load_local_folder(path, device=device, dtype=dtype, processing=processing)
    return _load_hub_name(str(name_or_path), device=device, dtype=dtype, processing=processing)


def _load_hub_name(
    name: str, *, device: str | torch.device, dtype: torch.dtype, processing: dict[str, Any]
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
    kwargs: dict[str, Any] = {**DEFAULT_PROCESSING, **processing, "device": device, "dtype": dtype}
    if cache_only:
        kwargs["local_files_only"] = True
    return HookedTransformer.from_pretrained(official, **kwargs)


def _load_local_folder(
    path: Path, *, device: str | torch.device, dtype: torch.dtype, processing: dict[str, Any]
) -> Any:
    import transformer_lens.loading_from_pretrained as tl_loading
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config_file = path / "config.json"
    if not path.is_dir() or not config_file.is_file():
        raise LoadingError(
            f"{str(path)!r} is not a Hugging Face model folder: expected a folder with config.json "
            "and weights (as `save_pretrained(folder)` writes)."
        )
    try:
        hf_config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LoadingError(f"{str(config_file)!r} is not valid JSON: {error}") from None
    flags = {**DEFAULT_PROCESSING, **processing}
    with _TLCompatibleFolder(path, hf_config) as folder:
        try:
            cfg = tl_loading.get_pretrained_model_config(
                str(folder), fold_ln=flags["fold_ln"], device=device, dtype=dtype
            )
            hf_model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, dtype=dtype
            )
        except (OSError, ValueError, KeyError, AttributeError) as error:
            raise LoadingError(
                f"could not read the model in {str(path)!r} ({type(error).__name__}: {error}). "
                "Check that the folder is complete and of an architecture TransformerLens supports."
            ) from None
        state_dict = tl_loading.get_pretrained_state_dict(str(folder), cfg, hf_model=hf_model)
        tokenizer = None
        if any(
            (path / name).exists() for name in ("tokenizer.json", "vocab.json", "tokenizer.model")
        ):
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=flags["fold_ln"],
        center_writing_weights=flags["center_writing_weights"],
        center_unembed=flags["center_unembed"],
        fold_value_biases=flags["fold_value_biases"],
    )
    return model.to(device)


class _TLCompatibleFolder:
    """Yield a folder TransformerLens's converter can read.

    Hugging Face's GPT-2 config on the hub carries `n_ctx`; `transformers>=5` no longer writes it on
    `save_pretrained`, and TransformerLens 3.9 reads it. For such folders, yield a temporary copy
    of the config (weights symlinked) with `n_ctx = n_positions`; otherwise the folder itself.
    """

    def __init__(self, path: Path, hf_config: dict[str, Any]) -> None:
        self.path = path
        self.needs_patch = hf_config.get("model_type") == "gpt2" and "n_ctx" not in hf_config
        self.hf_config = hf_config
        self.tmp: str | None = None

    def __enter__(self) -> Path:
        if not self.needs_patch:
            return self.path
        self.tmp = tempfile.mkdtemp(prefix="feature-lens-model-")
        for item in self.path.iterdir():
            if item.name != "config.json":
                (Path(self.tmp) / item.name).symlink_to(item.resolve())
        patched = {**self.hf_config, "n_ctx": self.hf_config.get("n_positions", 1024)}
        (Path(self.tmp) / "config.json").write_text(json.dumps(patched))
        return Path(self.tmp)

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
