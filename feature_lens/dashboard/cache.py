"""A disk cache for the results of passes over a dashboard's corpus.

A pass over the corpus (feature densities, the chosen features' activations and correlation sums)
depends only on the model, its dictionaries, the corpus's tokens and what is asked for. Its key is a
digest of all four: the model's config and every weight, each dictionary's site, hooks, type and
weights, the token ids, and a description of the request. Each tensor enters the digest through its
shape, dtype, an evenly spaced sample of up to 65,536 values, and its float64 sum (which touches
every element), so reading the key costs one pass over the weights, not a forward pass over the
corpus. Results are stored as one safetensors file per key, written atomically (temp file and
rename), so an interrupted build never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from feature_lens.lens import CrossLayerSite, Lens

_SAMPLE = 65536
#: Config fields that say where the model runs, not what it computes.
_PLACEMENT_FIELDS = ("device", "n_devices")


def _digest_tensor(hasher: Any, tensor: Tensor) -> None:
    t = tensor.detach()
    hasher.update(f"{tuple(t.shape)}|{t.dtype}|".encode())
    flat = t.reshape(-1)
    if flat.numel() > _SAMPLE:
        flat = flat[torch.linspace(0, flat.numel() - 1, _SAMPLE, device=flat.device).long()]
    hasher.update(flat.to("cpu", torch.float64).numpy().tobytes())
    hasher.update(repr(float(t.sum(dtype=torch.float64))).encode())


def _digest_module(hasher: Any, module: Any) -> None:
    for name, tensor in sorted(module.state_dict().items()):
        hasher.update(name.encode())
        _digest_tensor(hasher, tensor)


def corpus_pass_key(lens: Lens, tokens: Tensor, request: Mapping[str, Any]) -> str:
    """The cache key of a pass of `lens` over `tokens` that computes what `request` describes."""
    hasher = hashlib.sha256()
    cfg = {k: v for k, v in lens.model.cfg.to_dict().items() if k not in _PLACEMENT_FIELDS}
    hasher.update(repr(sorted((k, repr(v)) for k, v in cfg.items())).encode())
    _digest_module(hasher, lens.model)
    for site, dictionary in lens.dictionaries.items():
        kind = type(dictionary.sae).__name__
        hasher.update(f"{site}|{dictionary.hook_in}|{dictionary.hook_out}|{kind}".encode())
        if dictionary.sae is not None:
            _digest_module(hasher, dictionary.sae)
        elif isinstance(dictionary, CrossLayerSite):  # every layer's encoder and decoders
            for name, tensor in dictionary.clt.tensors().items():
                hasher.update(name.encode())
                _digest_tensor(hasher, tensor)
        else:  # directions: their vectors are all there is
            _digest_tensor(hasher, dictionary.W_dec)
    hasher.update(f"{tokens.dtype}|{tuple(tokens.shape)}|".encode())
    hasher.update(tokens.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    hasher.update(json.dumps(request, sort_keys=True, default=str).encode())
    return hasher.hexdigest()[:32]


def cached_tensors(
    cache_dir: str | Path | None, key: str, compute: Callable[[], dict[str, Tensor]]
) -> dict[str, Tensor]:
    """`compute()`, or its stored result under `key` in `cache_dir` (None: no caching)."""
    if cache_dir is None:
        return compute()
    from safetensors import SafetensorError

    from feature_lens.typed import load_file, save_file

    folder = Path(cache_dir).expanduser()
    path = folder / f"{key}.safetensors"
    if path.is_file():
        try:
            return load_file(path)
        except (SafetensorError, OSError):
            pass  # a damaged entry is recomputed and replaced
    result = compute()
    folder.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{key}-", suffix=".tmp")
    os.close(handle)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in result.items()}, temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return result
