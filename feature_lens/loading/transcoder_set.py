"""Load circuit-tracer transcoder sets from a local folder as SAE-Lens transcoders.

circuit-tracer (decoderesearch/circuit-tracer) stores a set of per-layer transcoders as a folder
(what it caches under `CIRCUIT_TRACER_CACHE_DIR/<ref>/`, or a Hugging Face repository's files):

- `config.yaml`: `model_kind: transcoder_set`, `feature_input_hook` and `feature_output_hook`
  (hook names relative to a block, e.g. `ln2.hook_normalized` and `hook_mlp_out`), optionally
  `model_name`, `scan` and `transcoders` (the layer files, in layer order);
- `layer_L.safetensors` for each layer L from 0: `W_enc [d_transcoder, d_model]` (used as
  `x @ W_enc.T + b_enc`), `W_dec [d_transcoder, d_model]`, `b_enc`, `b_dec`, optionally
  `activation_function.threshold` (JumpReLU: `pre * (pre > threshold)`; otherwise ReLU) and
  `W_skip [d_model, d_model]` (skip transcoder: the reconstruction adds `x @ W_skip.T`).

Each layer becomes the matching SAE-Lens transcoder (`Transcoder`, `JumpReLUTranscoder`,
`SkipTranscoder`, `JumpReLUSkipTranscoder`; the encoder transposed to SAE-Lens's `[d_in, d_sae]`),
reading `blocks.L.<feature_input_hook>` and writing `blocks.L.<feature_output_hook>`, so every
feature-lens method works on it unchanged. circuit-tracer's replacement-model hook names
`mlp.hook_in` / `mlp.hook_out` are translated to TransformerLens's `ln2.hook_normalized` /
`hook_mlp_out`. Cross-layer transcoders (`model_kind: cross_layer_transcoder`) load through
`feature_lens.loading.cross_layer_transcoder`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

import torch

from feature_lens.errors import LoadingError

CONFIG_FILE = "config.yaml"
_LAYER_FILE = re.compile(r"^layer_(\d+)\.safetensors$")
# circuit-tracer wraps each MLP in a module with hooks of its own; these are the same tensors.
_HOOK_ALIASES = {"mlp.hook_in": "ln2.hook_normalized", "mlp.hook_out": "hook_mlp_out"}
_KNOWN_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec", "W_skip", "activation_function.threshold"}


def is_transcoder_set(path: Path) -> bool:
    """Whether `path` is a folder in circuit-tracer's format (it holds a `config.yaml`)."""
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def read_config(path: Path) -> dict[str, Any]:
    """The folder's `config.yaml`, checked: a transcoder set with both hooks named."""
    import yaml

    config_file = path / CONFIG_FILE
    try:
        config = yaml.safe_load(config_file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise LoadingError(
            f"{str(config_file)!r} is not valid YAML ({type(error).__name__}); the file is corrupt"
        ) from None
    if not isinstance(config, dict):
        raise LoadingError(f"{str(config_file)!r} is not a circuit-tracer config (not a mapping)")
    config = cast("dict[str, Any]", config)
    kind: Any = config.get("model_kind")
    if kind not in ("transcoder_set", "cross_layer_transcoder"):
        raise LoadingError(
            f"{str(config_file)!r} has model_kind {kind!r}; circuit-tracer folders have "
            "model_kind: transcoder_set or cross_layer_transcoder"
        )
    for key in ("feature_input_hook", "feature_output_hook"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise LoadingError(
                f"{str(config_file)!r} names no {key}; add it (e.g. feature_input_hook: "
                "ln2.hook_normalized, feature_output_hook: hook_mlp_out)"
            )
    return config


def layer_files(path: Path, config: dict[str, Any]) -> list[Path]:
    """The layer files in layer order: the config's `transcoders` list when it names local files
    in the folder, else `layer_0.safetensors`, `layer_1.safetensors`, ... (no gaps)."""
    listed: Any = config.get("transcoders")
    if isinstance(listed, list) and listed:
        files: list[Path] = []
        for entry in cast("list[Any]", listed):
            name = Path(str(entry).removeprefix("hf://").rsplit("@", 1)[0]).name
            files.append(path / name)
    else:
        found: dict[int, Path] = {}
        for file in path.iterdir():
            match = _LAYER_FILE.match(file.name)
            if match:
                found[int(match.group(1))] = file
        if not found:
            raise LoadingError(
                f"{str(path)!r} has a config.yaml but no layer_L.safetensors files; a "
                "circuit-tracer transcoder set has one per layer, from layer_0.safetensors"
            )
        gaps = sorted(set(range(max(found) + 1)) - set(found))
        if gaps:
            raise LoadingError(
                f"{str(path)!r} has no layer_{gaps[0]}.safetensors; a transcoder set covers "
                f"every layer from 0 to {max(found)}"
            )
        files = [found[i] for i in range(len(found))]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise LoadingError(
            f"{str(path)!r} lacks {', '.join(missing)}, which its config.yaml lists; copy the "
            "layer files into the folder"
        )
    return files


def load_transcoder_set(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> list[Any]:
    """Every layer's transcoder in a circuit-tracer transcoder-set folder, as SAE-Lens
    transcoders (one per layer, in layer order) carrying their hooks and the model's name; for a
    cross-layer transcoder folder, its `CrossLayerSite`s (see `loading.cross_layer_transcoder`)."""
    path = Path(path).expanduser()
    config = read_config(path)
    hook_in = _HOOK_ALIASES.get(
        str(config["feature_input_hook"]), str(config["feature_input_hook"])
    )
    hook_out = _HOOK_ALIASES.get(
        str(config["feature_output_hook"]), str(config["feature_output_hook"])
    )
    if config["model_kind"] == "cross_layer_transcoder":
        from feature_lens.loading.cross_layer_transcoder import load_cross_layer_transcoder

        return list(
            load_cross_layer_transcoder(
                path, config, hook_in=hook_in, hook_out=hook_out, device=device, dtype=dtype
            )
        )
    model_name = config.get("model_name")
    return [
        _transcoder(
            file,
            layer,
            hook_in=f"blocks.{layer}.{hook_in}",
            hook_out=f"blocks.{layer}.{hook_out}",
            model_name=str(model_name) if model_name else None,
            device=device,
            dtype=dtype,
        )
        for layer, file in enumerate(layer_files(path, config))
    ]


def _transcoder(
    file: Path,
    layer: int,
    *,
    hook_in: str,
    hook_out: str,
    model_name: str | None,
    device: str | torch.device,
    dtype: torch.dtype | None,
) -> Any:
    weights = _read_weights(file)
    w_enc = weights["W_enc"]
    d_sae, d_in = w_enc.shape
    target_dtype = dtype or w_enc.dtype
    threshold = weights.get("activation_function.threshold")
    skip = weights.get("W_skip")
    cls, config_cls = _sae_lens_classes(jumprelu=threshold is not None, skip=skip is not None)
    transcoder = cls(
        config_cls(
            d_in=int(d_in),
            d_sae=int(d_sae),
            d_out=int(weights["W_dec"].shape[1]),
            apply_b_dec_to_input=False,
            dtype=str(target_dtype).removeprefix("torch."),
            device=str(device),
        )
    )
    state = {
        "W_enc": w_enc.T.contiguous(),
        "W_dec": weights["W_dec"],
        "b_enc": weights["b_enc"],
        "b_dec": weights["b_dec"],
    }
    if threshold is not None:
        state["threshold"] = threshold
    if skip is not None:
        state["W_skip"] = skip
    with torch.no_grad():
        for name, value in state.items():
            getattr(transcoder, name).copy_(value.to(target_dtype))
    transcoder = transcoder.to(device=device, dtype=target_dtype)
    transcoder.cfg.metadata.hook_name = hook_in
    transcoder.cfg.metadata.hook_name_out = hook_out
    transcoder.cfg.metadata.hook_layer = layer
    if model_name:
        transcoder.cfg.metadata.model_name = model_name
    return transcoder


def _sae_lens_classes(*, jumprelu: bool, skip: bool) -> tuple[Any, Any]:
    """The SAE-Lens transcoder class (and its config class) with the same activation and skip."""
    import sae_lens

    if jumprelu and skip:
        return sae_lens.JumpReLUSkipTranscoder, sae_lens.JumpReLUSkipTranscoderConfig
    if jumprelu:
        return sae_lens.JumpReLUTranscoder, sae_lens.JumpReLUTranscoderConfig
    if skip:
        return sae_lens.SkipTranscoder, sae_lens.SkipTranscoderConfig
    return sae_lens.Transcoder, sae_lens.TranscoderConfig


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    """One layer file's tensors, checked: the four required ones, nothing unknown, consistent
    shapes, JumpReLU thresholds >= 0."""
    from safetensors import SafetensorError

    from feature_lens.typed import load_file

    try:
        weights = load_file(str(file), device="cpu")
    except (SafetensorError, OSError) as error:
        raise LoadingError(
            f"{str(file)!r} is not a readable safetensors file ({error}); the file is corrupt"
        ) from None
    missing = sorted({"W_enc", "W_dec", "b_enc", "b_dec"} - set(weights))
    if missing:
        raise LoadingError(
            f"{str(file)!r} lacks {', '.join(missing)}; a circuit-tracer transcoder file holds "
            "W_enc, W_dec, b_enc and b_dec"
        )
    unknown = sorted(set(weights) - _KNOWN_KEYS)
    if unknown:
        raise LoadingError(
            f"{str(file)!r} holds {', '.join(unknown)}, which a per-layer transcoder does not "
            "have; is it another format (e.g. a cross-layer transcoder)?"
        )
    w_enc, w_dec = weights["W_enc"], weights["W_dec"]
    d_sae, d_in = w_enc.shape
    d_out = int(w_dec.shape[1])
    if (
        w_dec.shape[0] != d_sae
        or weights["b_enc"].shape != (d_sae,)
        or weights["b_dec"].shape != (d_out,)
    ):
        raise LoadingError(
            f"{str(file)!r} has inconsistent shapes (W_enc {tuple(w_enc.shape)}, W_dec "
            f"{tuple(w_dec.shape)}, b_enc {tuple(weights['b_enc'].shape)}, b_dec "
            f"{tuple(weights['b_dec'].shape)}); expected W_enc and W_dec [d_transcoder, d_model]"
        )
    threshold = weights.get("activation_function.threshold")
    if threshold is not None and bool((threshold < 0).any()):
        # circuit-tracer's JumpReLU passes negative pre-activations above a negative threshold;
        # SAE-Lens's applies a ReLU first. They agree only for thresholds >= 0.
        raise LoadingError(
            f"{str(file)!r} has negative JumpReLU thresholds (min {float(threshold.min()):.3g}); "
            "feature-lens's JumpReLU transcoders need thresholds >= 0"
        )
    skip = weights.get("W_skip")
    if skip is not None and skip.shape != (d_out, d_in):
        raise LoadingError(
            f"{str(file)!r} has W_skip of shape {tuple(skip.shape)}; expected ({d_out}, {d_in})"
        )
    return weights
