"""Helpers shared by the benchmark scripts: random models and SAEs built from configs, timing.

The scripts run as `python benchmarks/bench_x.py`, so this folder is on `sys.path` and they import
this module by its bare name. Each script sets `OMP_WAIT_POLICY=PASSIVE` before torch is imported:
on a machine shared with other jobs, OpenMP workers that spin-wait get descheduled and every small
op then waits for a time slice (forwards of a tiny model were 100x slower with the default).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")
MODEL_NAME = "bench-random-model"


def build_model(
    *,
    n_layers: int,
    d_model: int,
    n_heads: int = 4,
    d_mlp: int | None = None,
    d_vocab: int = 256,
    n_ctx: int = 32,
    seed: int = 0,
) -> Any:
    """A random `HookedTransformer` (attention, GELU MLPs, LayerNorm) built from a config, with
    TransformerLens's default initialisation, in eval mode."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    warnings.filterwarnings("ignore", "HookedTransformer is deprecated", DeprecationWarning)
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_ctx=n_ctx,
        d_head=d_model // n_heads,
        n_heads=n_heads,
        d_mlp=d_mlp or 4 * d_model,
        d_vocab=d_vocab,
        act_fn="gelu",
        normalization_type="LN",
        seed=seed,
        model_name=MODEL_NAME,
    )
    return HookedTransformer(cfg).eval()


def build_saes(
    model: Any,
    tokens: Tensor,
    d_sae: int,
    sites: Sequence[str],
    *,
    active: int = 24,
    seed: int = 0,
) -> list[Any]:
    """Random SAE-Lens standard SAEs at `sites` (residual-stream hooks of width d_model).

    Encoder and decoder columns are Gaussian with norm about 1; one encoder bias per SAE is set so
    that about `active` features fire per token on `tokens` (a quantile of the pre-activations).
    """
    import sae_lens

    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=list(sites))
    generator = torch.Generator().manual_seed(seed)
    d_in = int(model.cfg.d_model)
    saes = []
    for site in sites:
        sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=d_in, d_sae=d_sae))
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=generator) / d_in**0.5)
            sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=generator) / d_in**0.5)
            sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=generator))
            pre = ((cache[site].reshape(-1, d_in) - sae.b_dec) @ sae.W_enc).flatten()
            # torch.quantile refuses inputs above 16M elements; kthvalue has no such limit.
            k = max(1, round(pre.numel() * (1 - active / d_sae)))
            sae.b_enc.fill_(-float(pre.kthvalue(k).values))
        sae.cfg.metadata.hook_name = site
        sae.cfg.metadata.model_name = MODEL_NAME
        saes.append(sae.eval())
    return saes


def best_of(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Fastest wall-clock time in seconds of `repeats` calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    assert out is not None
    return best, out


LOADED = 2.0
"""Load average above which a run is flagged (the project's machine has 2 cores)."""


def load_line(when: str) -> str:
    """`/proc/loadavg` now, flagged when the 1-minute load is above `LOADED`."""
    load = os.getloadavg()[0]
    with open("/proc/loadavg") as handle:
        text = handle.read().strip()
    flag = (
        f"  ** FLAGGED: load {load:.1f} > {LOADED:g}, timings inflated **" if load > LOADED else ""
    )
    return f"   /proc/loadavg at {when}: {text}{flag}"


def machine_line(name: str) -> str:
    """One line naming the benchmark, torch's thread count and the machine's load."""
    load = os.getloadavg()[0]
    shared = " (above the thread count: other jobs share the machine)"
    return (
        f"{name}: {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, load average {load:.1f}"
        f"{shared if load > torch.get_num_threads() else ''}"
    )
