"""Write random transcoder sets in circuit-tracer's on-disk format, and its formulas by hand.

The format (circuit-tracer 0.5.0, `utils/caching.py` and `transcoder/single_layer_transcoder.py`):
`config.yaml` with `model_kind: transcoder_set` and the two hooks, plus `layer_L.safetensors` per
layer with `W_enc`/`W_dec` `[d_transcoder, d_model]`, `b_enc`, `b_dec`, and optionally
`activation_function.threshold` (JumpReLU) and `W_skip` (`x @ W_skip.T`). The formulas below are
written from that description, independently of feature-lens's loader.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

KINDS = ("relu", "jumprelu", "skip", "jumprelu_skip")


def write_transcoder_set(
    folder: Path,
    *,
    n_layers: int,
    d_model: int,
    kind: str = "relu",
    d_transcoder: int = 32,
    seed: int = 0,
    model_name: str = "tiny-test-model",
    input_hook: str = "ln2.hook_normalized",
    output_hook: str = "hook_mlp_out",
) -> list[dict[str, torch.Tensor]]:
    """Random per-layer transcoders of `kind` in circuit-tracer's format; returns their weights
    (float32, as saved). Biases are chosen so that roughly a third of the features fire."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    layers: list[dict[str, torch.Tensor]] = []
    for layer in range(n_layers):

        def rand(*shape: int, scale: float) -> torch.Tensor:
            return scale * torch.randn(*shape, generator=generator)

        weights = {
            "W_enc": rand(d_transcoder, d_model, scale=0.4),
            "W_dec": rand(d_transcoder, d_model, scale=0.3),
            "b_enc": rand(d_transcoder, scale=0.3) - 0.4,
            "b_dec": rand(d_model, scale=0.05),
        }
        if "jumprelu" in kind:
            weights["activation_function.threshold"] = 0.3 * torch.rand(
                d_transcoder, generator=generator
            )
        if "skip" in kind:
            weights["W_skip"] = rand(d_model, d_model, scale=0.2)
        save_file(weights, str(folder / f"layer_{layer}.safetensors"))
        layers.append(weights)
    config = {
        "model_kind": "transcoder_set",
        "model_name": model_name,
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
        "scan": f"test-{kind}",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return layers


def ct_pre(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """circuit-tracer's pre-activation `x @ W_enc.T + b_enc` (no input centring)."""
    return x @ weights["W_enc"].T.to(x.dtype) + weights["b_enc"].to(x.dtype)


def ct_encode(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """circuit-tracer's activation: JumpReLU `pre * (pre > threshold)`, or ReLU."""
    pre = ct_pre(weights, x)
    threshold = weights.get("activation_function.threshold")
    if threshold is None:
        return torch.relu(pre)
    return pre * (pre > threshold.to(x.dtype))


def ct_skip(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The skip term `x @ W_skip.T` (zero without one)."""
    skip = weights.get("W_skip")
    return torch.zeros_like(x) if skip is None else x @ skip.T.to(x.dtype)


def ct_reconstruct(
    weights: dict[str, torch.Tensor], x: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """circuit-tracer's reconstruction `f @ W_dec + b_dec (+ x @ W_skip.T)`."""
    return f @ weights["W_dec"].to(x.dtype) + weights["b_dec"].to(x.dtype) + ct_skip(weights, x)
