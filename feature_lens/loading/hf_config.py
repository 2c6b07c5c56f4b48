"""Read a Hugging Face model folder's `config.json` and turn it into a TransformerLens config.

The architecture comes from `config.json` (`architectures[0]`), never from the folder's path:
TransformerLens 3.x guesses Llama and Gemma from the *name* it is given ("llama" anywhere in a path
makes it skip the config), so its converter is handed a private folder whose path carries no model
name, holding only a copy of the config. Gemma-2 has no config-based converter in TransformerLens
(it knows the released sizes by name only); its fields are mapped here from the Hugging Face config,
the same fields TransformerLens uses for the released sizes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import torch

from feature_lens.errors import LoadingError

#: Architectures tested end to end on local folders (other TransformerLens ones may work too).
TESTED_ARCHITECTURES = (
    "GPT2LMHeadModel",
    "GPTNeoXForCausalLM",
    "LlamaForCausalLM",
    "Gemma2ForCausalLM",
    "Qwen2ForCausalLM",
)

#: Config fields that must be positive integers when present.
_INTEGER_FIELDS = (
    "n_layer",
    "n_embd",
    "n_head",
    "n_positions",
    "n_ctx",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "max_position_embeddings",
    "vocab_size",
    "head_dim",
)
_NUMBER_FIELDS = ("layer_norm_epsilon", "layer_norm_eps", "rms_norm_eps", "initializer_range")

#: Substrings that make TransformerLens choose an architecture by name instead of by config.
_NAME_TRIGGERS = ("llama", "gemma", "wav2vec2", "hubert", "bert", "t5", "phi")


def read_hf_config(folder: Path) -> dict[str, Any]:
    """`folder/config.json` as a dict, checked: valid JSON, an object, an architecture, and
    integer/number fields of the right type. Raises `LoadingError` naming the field."""
    config_file = folder / "config.json"
    if not folder.is_dir() or not config_file.is_file():
        raise LoadingError(
            f"{str(folder)!r} is not a Hugging Face model folder: expected a folder with "
            "config.json and weights (as `save_pretrained(folder)` writes)."
        )
    try:
        config = json.loads(config_file.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise LoadingError(
            f"{str(config_file)!r} is not valid JSON ({error}); the file is corrupt."
        ) from None
    if not isinstance(config, dict):
        raise LoadingError(f"{str(config_file)!r} must hold a JSON object, not a model config")
    config = cast("dict[str, Any]", config)
    architectures: Any = config.get("architectures")
    if (
        not isinstance(architectures, list)
        or not architectures
        or not isinstance(architectures[0], str)
    ):
        raise LoadingError(
            f"{str(config_file)!r} names no architecture (its 'architectures' list is missing or "
            f"empty); expected e.g. ['GPT2LMHeadModel'] as `save_pretrained` writes."
        )
    for field in _INTEGER_FIELDS:
        value: Any = config.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            raise LoadingError(
                f"{str(config_file)!r}: {field!r} must be a positive integer, got {value!r}"
            )
    for field in _NUMBER_FIELDS:
        value = config.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise LoadingError(f"{str(config_file)!r}: {field!r} must be a number, got {value!r}")
    return config


def architecture_of(config: dict[str, Any]) -> str:
    """The Hugging Face architecture class name, e.g. "LlamaForCausalLM"."""
    return str(config["architectures"][0])


@contextmanager
def neutral_config_folder(config: dict[str, Any]) -> Generator[Path]:
    """A private folder holding only `config.json`, at a path that names no model.

    GPT-2 configs written by `transformers>=5` lack `n_ctx`, which TransformerLens reads; it is
    filled in from `n_positions` in the copy.
    """
    patched = dict(config)
    if patched.get("model_type") == "gpt2" and "n_ctx" not in patched:
        patched["n_ctx"] = patched.get("n_positions", 1024)
    for _ in range(8):
        root = Path(tempfile.mkdtemp(prefix="fl-cfg-"))
        folder = root / "model"
        if not any(t in str(folder).lower() for t in _NAME_TRIGGERS):
            break
        shutil.rmtree(root, ignore_errors=True)
    else:
        raise LoadingError(
            f"the temporary folder {tempfile.gettempdir()!r} has a model name in its path, which "
            "makes TransformerLens guess the architecture; set TMPDIR to another folder"
        )
    try:
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(patched))
        yield folder
    finally:
        shutil.rmtree(root, ignore_errors=True)


def transformer_lens_config(
    config: dict[str, Any],
    *,
    model_name: str,
    fold_ln: bool,
    device: str | torch.device,
    dtype: torch.dtype,
) -> Any:
    """A `HookedTransformerConfig` for the model `config` describes, named `model_name`."""
    import transformer_lens.loading_from_pretrained as tl_loading
    from transformer_lens import HookedTransformerConfig

    architecture = architecture_of(config)
    try:
        if architecture == "Gemma2ForCausalLM":
            cfg_dict = _gemma2_config(config)
            if fold_ln:
                cfg_dict["normalization_type"] = "RMSPre"
            cfg_dict.update(
                init_weights=False, device=device, dtype=dtype, n_devices=1, from_checkpoint=False
            )
            cfg_dict.setdefault("default_prepend_bos", True)
            cfg = HookedTransformerConfig.from_dict(cfg_dict)
        else:
            with neutral_config_folder(config) as folder:
                cfg = tl_loading.get_pretrained_model_config(
                    str(folder), hf_cfg=config, fold_ln=fold_ln, device=device, dtype=dtype
                )
    except NotImplementedError:
        raise LoadingError(
            f"TransformerLens cannot convert the architecture {architecture!r}; feature-lens is "
            f"tested with {', '.join(TESTED_ARCHITECTURES)}."
        ) from None
    except (KeyError, AttributeError, TypeError, ValueError) as error:
        raise LoadingError(
            f"the {architecture} config is missing or has a bad field ({type(error).__name__}: "
            f"{error}); check config.json against what `save_pretrained` writes."
        ) from None
    cfg.model_name = model_name
    return cfg


def _rope_theta(config: dict[str, Any]) -> float:
    parameters: dict[str, Any] = config.get("rope_parameters") or {}
    return float(config.get("rope_theta", parameters.get("rope_theta", 10000.0)))


def _gemma2_config(hf: dict[str, Any]) -> dict[str, Any]:
    """TransformerLens fields for a Gemma-2 config (as TransformerLens sets them for the released
    sizes, read from the config instead of a table)."""
    n_layers = int(hf["num_hidden_layers"])
    n_heads = int(hf["num_attention_heads"])
    d_head = int(hf.get("head_dim") or hf["hidden_size"] // n_heads)
    layer_types = hf.get("layer_types") or [
        "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)
    ]
    scalar = float(hf.get("query_pre_attn_scalar") or d_head)
    cfg: dict[str, Any] = {
        "d_model": int(hf["hidden_size"]),
        "d_head": d_head,
        "n_heads": n_heads,
        "d_mlp": int(hf["intermediate_size"]),
        "n_layers": n_layers,
        "n_ctx": int(hf["max_position_embeddings"]),
        "eps": float(hf.get("rms_norm_eps", 1e-6)),
        "d_vocab": int(hf["vocab_size"]),
        "act_fn": hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh",
        "initializer_range": float(hf.get("initializer_range", 0.02)),
        "normalization_type": "RMS",
        "rotary_base": _rope_theta(hf),
        "rotary_dim": d_head,
        "positional_embedding_type": "rotary",
        "use_attn_scale": True,
        "attn_scale": scalar**0.5,
        "n_key_value_heads": int(hf.get("num_key_value_heads") or n_heads),
        "window_size": int(hf.get("sliding_window") or hf["max_position_embeddings"]),
        "use_local_attn": True,
        "attn_types": ["local" if t == "sliding_attention" else "global" for t in layer_types],
        "attn_scores_soft_cap": float(hf.get("attn_logit_softcapping") or -1.0),
        "output_logits_soft_cap": float(hf.get("final_logit_softcapping") or -1.0),
        "gated_mlp": True,
        "final_rms": True,
        "use_normalization_before_and_after": True,
        "original_architecture": "Gemma2ForCausalLM",
    }
    return cfg
