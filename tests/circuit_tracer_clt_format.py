"""Write random cross-layer transcoders in circuit-tracer's on-disk format, and its formulas by hand.

The format (circuit-tracer 0.5.0, `CrossLayerTranscoder.to_safetensors` and `load_clt`):
`config.yaml` with `model_kind: cross_layer_transcoder` and the two hooks; per layer l,
`W_enc_{l}.safetensors` (`W_enc_{l} [d_tc, d_model]`, `b_enc_{l}`, `b_dec_{l}`, optionally
`threshold_{l}`) and `W_dec_{l}.safetensors` (`W_dec_{l} [d_tc, L - l, d_model]`). The formulas
below are written from that description, independently of feature-lens's loader.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

Weights = list[dict[str, torch.Tensor]]


def write_clt(
    folder: Path,
    *,
    n_layers: int,
    d_model: int,
    jumprelu: bool = False,
    d_transcoder: int = 24,
    seed: int = 0,
    model_name: str = "tiny-test-model",
    input_hook: str = "mlp.hook_in",
    output_hook: str = "mlp.hook_out",
) -> Weights:
    """A random CLT in circuit-tracer's format; returns per layer `W_enc`, `b_enc`, `b_dec`,
    `W_dec` (and `threshold`), float32 as saved. Roughly a third of the features fire."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float) -> torch.Tensor:
        return scale * torch.randn(*shape, generator=generator)

    layers: Weights = []
    for layer in range(n_layers):
        w = {
            "W_enc": rand(d_transcoder, d_model, scale=0.4),
            "b_enc": rand(d_transcoder, scale=0.3) - 0.4,
            "b_dec": rand(d_model, scale=0.05),
            "W_dec": rand(d_transcoder, n_layers - layer, d_model, scale=0.3),
        }
        if jumprelu:
            w["threshold"] = 0.3 * torch.rand(d_transcoder, generator=generator)
        encoder = {f"W_enc_{layer}": w["W_enc"], f"b_enc_{layer}": w["b_enc"]}
        encoder[f"b_dec_{layer}"] = w["b_dec"]
        if jumprelu:
            encoder[f"threshold_{layer}"] = w["threshold"]
        save_file(encoder, str(folder / f"W_enc_{layer}.safetensors"))
        save_file({f"W_dec_{layer}": w["W_dec"]}, str(folder / f"W_dec_{layer}.safetensors"))
        layers.append(w)
    config = {
        "model_kind": "cross_layer_transcoder",
        "model_name": model_name,
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
        "scan": "test-clt",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return layers


def clt_pre(weights: Weights, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Layer `layer`'s pre-activation `x @ W_enc.T + b_enc`."""
    w = weights[layer]
    return x @ w["W_enc"].T.to(x.dtype) + w["b_enc"].to(x.dtype)


def clt_encode(weights: Weights, layer: int, x: torch.Tensor) -> torch.Tensor:
    """circuit-tracer's activation: JumpReLU `pre * (pre > threshold)`, or ReLU."""
    pre = clt_pre(weights, layer, x)
    threshold = weights[layer].get("threshold")
    return torch.relu(pre) if threshold is None else pre * (pre > threshold.to(x.dtype))


def clt_write(weights: Weights, source: int, target: int) -> torch.Tensor:
    """`[d_tc, d_model]`: the decoder of layer `source`'s features into layer `target`."""
    return weights[source]["W_dec"][:, target - source]


def clt_reconstruct(weights: Weights, target: int, features: list[torch.Tensor]) -> torch.Tensor:
    """Layer `target`'s reconstruction `b_dec + sum_{l <= target} f_l @ W_{l->target}`."""
    out = weights[target]["b_dec"].to(features[0].dtype)
    for source in range(target + 1):
        out = out + features[source] @ clt_write(weights, source, target).to(features[0].dtype)
    return out
