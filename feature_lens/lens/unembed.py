"""The model's final LayerNorm and unembedding, with the transposed unembedding cached.

TransformerLens's `Unembed.forward` computes `F.linear(x, W_U.T.contiguous(), b_U)`: a fresh copy
of the `[d_vocab, d_model]` matrix on every forward (154 MB for GPT-2 small, about 12 % of a
64-token attribution pass on CPU). `run_model` runs the blocks through TransformerLens and then
the final LayerNorm and the unembedding itself, with that transposed copy made once per weight
(`unembed_weight`) and reused while the weight is unchanged: the same operation on the same
operands, so the logits are bit-identical to the model's own. The hooks of `ln_final` and
`unembed` fire as in the model's forward. Models that are not a plain `HookedTransformer`
(several devices, a different unembedding) run through their own forward.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

Hooks = list[tuple[str, Callable[..., Tensor]]]

_CACHE: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Tensor]] = weakref.WeakKeyDictionary()


def _key(weight: Tensor) -> tuple[Any, ...]:
    # `_version` counts in-place writes (copy_, load_state_dict); the storage pointer, dtype and
    # device change when the weight is replaced or moved (`model.to(...)`).
    version = weight._version  # pyright: ignore[reportPrivateUsage]
    return (id(weight), weight.data_ptr(), version, weight.dtype, weight.device, weight.shape)


def unembed_weight(unembed: Any) -> Tensor:
    """`unembed.W_U.T.contiguous()` (no autograd history), made once per module and weight
    version: recomputed when `W_U` is written in place, replaced, or moved to another device or
    dtype."""
    weight: Tensor = unembed.W_U
    key = _key(weight)
    cached = _CACHE.get(unembed)
    if cached is not None and cached[0] == key:
        return cached[1]
    with torch.no_grad():
        transposed = weight.T.contiguous()
    _CACHE[unembed] = (key, transposed)
    return transposed


def clear_unembed_cache() -> None:
    """Drop every cached transposed unembedding (they are rebuilt on the next forward)."""
    _CACHE.clear()


def _fast_path(model: Any) -> bool:
    """Whether `run_model` may compute the final LayerNorm and unembedding itself."""
    from transformer_lens import HookedTransformer
    from transformer_lens.components.unembed import Unembed

    cfg = model.cfg
    return (
        isinstance(model, HookedTransformer)
        and type(model.unembed) is Unembed
        and int(getattr(cfg, "n_devices", 1) or 1) == 1
    )


def run_model(
    model: Any,
    model_input: Tensor,
    hooks: Hooks,
    *,
    start_at_layer: int | None = None,
    stop_at_layer: int | None = None,
    logit_positions: Sequence[int] | None = None,
) -> Tensor:
    """`model.run_with_hooks(model_input, fwd_hooks=hooks, start_at_layer=..., stop_at_layer=...)`
    with the logits computed from the cached transposed unembedding (see the module doc);
    `logit_positions`: the logits at those positions only (after the final LayerNorm, which is
    per position, so the values are the full logits' at those positions)."""
    if logit_positions is not None and stop_at_layer is not None:
        raise ValueError("logit_positions needs the whole model (no stop_at_layer)")
    if stop_at_layer is not None or not _fast_path(model):
        out = model.run_with_hooks(
            model_input,
            fwd_hooks=hooks,
            start_at_layer=start_at_layer,
            stop_at_layer=stop_at_layer,
        )
        return out if logit_positions is None else out[:, list(logit_positions)]
    cfg = model.cfg
    with model.hooks(fwd_hooks=hooks):
        residual = model(
            model_input, start_at_layer=start_at_layer, stop_at_layer=int(cfg.n_layers)
        )
        if cfg.normalization_type is not None:
            residual = model.ln_final(residual)
        unembed = model.unembed
        if logit_positions is not None:
            residual = residual[:, list(logit_positions)]
        residual = unembed.hook_in(residual)
        logits = unembed.hook_out(F.linear(residual, unembed_weight(unembed), unembed.b_U))
    cap = getattr(cfg, "output_logits_soft_cap", None)
    if cap is not None and cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits
