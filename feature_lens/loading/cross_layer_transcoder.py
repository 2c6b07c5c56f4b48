"""Load circuit-tracer cross-layer transcoders (CLTs) from a local folder.

circuit-tracer 0.5.0 (`transcoder/cross_layer_transcoder.py`, `load_clt` and `to_safetensors`)
stores a CLT over L layers as a folder holding
- `config.yaml`: `model_kind: cross_layer_transcoder`, `feature_input_hook`, `feature_output_hook`
  (hook names relative to a block; circuit-tracer's `mlp.hook_in` / `mlp.hook_out` are
  TransformerLens's `ln2.hook_normalized` / `hook_mlp_out`), optionally `model_name` and `scan`;
- `W_enc_{l}.safetensors` for each layer l from 0: `W_enc_{l} [d_transcoder, d_model]` (used as
  `x @ W_enc.T + b_enc`), `b_enc_{l} [d_transcoder]`, `b_dec_{l} [d_model]` (layer l's output
  bias) and optionally `threshold_{l} [d_transcoder]` (JumpReLU `pre * (pre > threshold)`,
  otherwise ReLU);
- `W_dec_{l}.safetensors`: `W_dec_{l} [d_transcoder, L - l, d_model]`, the decoders of layer l's
  features into layers l, l+1, ..., L-1.
The result is one `CrossLayerSite` per layer (see `feature_lens.lens.cross_layer`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import LoadingError
from feature_lens.lens.cross_layer import CrossLayerSite, CrossLayerTranscoder

_ENCODER_FILE = re.compile(r"^W_enc_(\d+)\.safetensors$")


def load_cross_layer_transcoder(
    path: Path,
    config: dict[str, Any],
    *,
    hook_in: str,
    hook_out: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> list[CrossLayerSite]:
    """The CLT in `path` (its `config.yaml` already read and checked) as one site per layer,
    reading `blocks.l.<hook_in>` and writing `blocks.k.<hook_out>` for k >= l."""
    if hook_in == hook_out:
        raise LoadingError(
            f"{str(path)!r}: a cross-layer transcoder must read and write different hooks, but "
            f"both are {hook_in!r}; fix feature_input_hook / feature_output_hook in config.yaml"
        )
    n_layers = _layer_count(path)
    encoders = [_read(path / f"W_enc_{layer}.safetensors") for layer in range(n_layers)]
    decoders = [_read(path / f"W_dec_{layer}.safetensors") for layer in range(n_layers)]
    first = encoders[0]
    if "W_enc_0" not in first:
        raise LoadingError(f"{str(path / 'W_enc_0.safetensors')!r} lacks W_enc_0")
    d_sae, d_in = first["W_enc_0"].shape
    has_threshold = "threshold_0" in first
    w_enc: list[torch.Tensor] = []
    w_dec: list[torch.Tensor] = []
    b_enc: list[torch.Tensor] = []
    b_dec: list[torch.Tensor] = []
    thresholds: list[torch.Tensor] = []
    d_out = -1
    for layer, (enc, dec) in enumerate(zip(encoders, decoders, strict=True)):
        enc_file = str(path / f"W_enc_{layer}.safetensors")
        dec_file = str(path / f"W_dec_{layer}.safetensors")
        expected = {f"W_enc_{layer}", f"b_enc_{layer}", f"b_dec_{layer}"}
        if has_threshold:
            expected.add(f"threshold_{layer}")
        if set(enc) != expected:
            raise LoadingError(
                f"{enc_file!r} holds {', '.join(sorted(enc)) or 'nothing'}; expected "
                f"{', '.join(sorted(expected))} (thresholds in every layer or in none)"
            )
        if set(dec) != {f"W_dec_{layer}"}:
            raise LoadingError(
                f"{dec_file!r} holds {', '.join(sorted(dec)) or 'nothing'}; expected W_dec_{layer}"
            )
        encoder, decoder = enc[f"W_enc_{layer}"], dec[f"W_dec_{layer}"]
        bias_in, bias_out = enc[f"b_enc_{layer}"], enc[f"b_dec_{layer}"]
        d_out = int(bias_out.shape[0]) if layer == 0 else d_out
        shapes_ok = (
            encoder.shape == (d_sae, d_in)
            and bias_in.shape == (d_sae,)
            and bias_out.shape == (d_out,)
            and decoder.shape == (d_sae, n_layers - layer, d_out)
            and (not has_threshold or enc[f"threshold_{layer}"].shape == (d_sae,))
        )
        if not shapes_ok:
            raise LoadingError(
                f"layer {layer} of {str(path)!r} has inconsistent shapes (W_enc "
                f"{tuple(encoder.shape)}, b_enc {tuple(bias_in.shape)}, b_dec "
                f"{tuple(bias_out.shape)}, W_dec {tuple(decoder.shape)}); expected W_enc "
                f"({d_sae}, {d_in}), b_enc ({d_sae},), b_dec ({d_out},) and W_dec "
                f"({d_sae}, {n_layers - layer}, {d_out})"
            )
        w_enc.append(encoder.T.contiguous())
        w_dec.append(decoder)
        b_enc.append(bias_in)
        b_dec.append(bias_out)
        if has_threshold:
            thresholds.append(enc[f"threshold_{layer}"])
    model_name = config.get("model_name")
    clt = CrossLayerTranscoder(
        W_enc=w_enc,
        b_enc=torch.stack(b_enc),
        W_dec=w_dec,
        b_dec=torch.stack(b_dec),
        threshold=torch.stack(thresholds) if has_threshold else None,
        hooks_in=[f"blocks.{layer}.{hook_in}" for layer in range(n_layers)],
        hooks_out=[f"blocks.{layer}.{hook_out}" for layer in range(n_layers)],
        model_name=str(model_name) if model_name else None,
    )
    clt.to(device=device, dtype=dtype or first["W_enc_0"].dtype)
    return clt.sites()


def _layer_count(path: Path) -> int:
    """L, from the encoder files `W_enc_0` .. `W_enc_{L-1}` (no gaps), each with its decoder."""
    found = {
        int(match.group(1))
        for file in path.iterdir()
        if (match := _ENCODER_FILE.match(file.name)) is not None
    }
    if not found:
        raise LoadingError(
            f"{str(path)!r} has a cross-layer transcoder config.yaml but no W_enc_L.safetensors "
            "files; circuit-tracer's CLT folder has W_enc_L and W_dec_L for every layer from 0"
        )
    gaps = sorted(set(range(max(found) + 1)) - found)
    if gaps:
        raise LoadingError(
            f"{str(path)!r} has no W_enc_{gaps[0]}.safetensors; a cross-layer transcoder covers "
            f"every layer from 0 to {max(found)}"
        )
    for layer in range(len(found)):
        if not (path / f"W_dec_{layer}.safetensors").is_file():
            raise LoadingError(
                f"{str(path)!r} has no W_dec_{layer}.safetensors; every layer's decoder file "
                "must be in the folder"
            )
    return len(found)


def _read(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError

    from feature_lens.typed import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError) as error:
        raise LoadingError(
            f"{str(file)!r} is not a readable safetensors file ({error}); the file is corrupt"
        ) from None
