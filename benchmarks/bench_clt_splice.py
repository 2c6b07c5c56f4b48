"""Benchmark: a forward pass with a cross-layer transcoder spliced in, against a dense splice.

A CLT over L layers reconstructs layer k's MLP output from every layer l <= k's features,
`b_dec_k + sum_l f_l @ W_{l->k}`: L(L+1)/2 decoder products per forward. feature-lens multiplies
through the features that are non-zero somewhere in the batch only (`cross_layer.py`); the baseline
is the same splice written with raw TransformerLens hooks and dense products `f_l @ W_{l->k}`. Both
record every layer's features and error terms (what `node_values` needs for attribution), on one
prompt (attribution runs prompt by prompt). The script checks that the two give the same error terms (relative 1e-4; exit status 1 if not) and
prints the times, the ratio dense / ours, and a plain model forward for scale.

Run: `python benchmarks/bench_clt_splice.py [--quick] [--threads N]`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from common import best_of, build_model, machine_line
from torch import Tensor

from feature_lens import CrossLayerTranscoder, Lens
from feature_lens.lens import RunPlan


def build_clt(model: Any, tokens: Tensor, d_sae: int, active: int, seed: int) -> Any:
    """A random CLT on every layer's `ln2.hook_normalized` -> `hook_mlp_out`, each layer's encoder
    bias set so that about `active` features fire per token."""
    n_layers, d_model = int(model.cfg.n_layers), int(model.cfg.d_model)
    names = [f"blocks.{layer}.ln2.hook_normalized" for layer in range(n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=names)
    generator = torch.Generator().manual_seed(seed)
    w_enc, b_enc, w_dec = [], [], []
    for layer in range(n_layers):
        encoder = torch.randn(d_model, d_sae, generator=generator) / d_model**0.5
        pre = (cache[names[layer]].reshape(-1, d_model) @ encoder).flatten()
        k = max(1, round(pre.numel() * (1 - active / d_sae)))
        w_enc.append(encoder)
        b_enc.append(torch.full((d_sae,), -float(pre.kthvalue(k).values)))
        scale = 1 / (d_model**0.5 * (n_layers - layer))
        w_dec.append(scale * torch.randn(d_sae, n_layers - layer, d_model, generator=generator))
    return CrossLayerTranscoder(
        W_enc=w_enc,
        b_enc=torch.stack(b_enc),
        W_dec=w_dec,
        b_dec=torch.zeros(n_layers, d_model),
        threshold=None,
        hooks_in=names,
        hooks_out=[f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)],
    )


def dense_errors(model: Any, clt: Any, tokens: Tensor) -> dict[int, Tensor]:
    """Every layer's error term from a dense splice written with raw hooks."""
    inputs: dict[int, Tensor] = {}
    features: dict[int, Tensor] = {}
    errors: dict[int, Tensor] = {}

    def read(act: Tensor, hook: Any) -> None:
        inputs[hook.layer()] = act

    def splice(act: Tensor, hook: Any) -> Tensor:
        k = hook.layer()
        features[k] = torch.relu(inputs[k] @ clt.W_enc[k] + clt.b_enc[k])
        x_hat = clt.b_dec[k] + sum(features[l] @ clt.W_dec[l][:, k - l] for l in range(k + 1))
        errors[k] = act - x_hat
        return act

    hooks: list[tuple[str, Any]] = []
    for name_in, name_out in zip(clt.hooks_in, clt.hooks_out, strict=True):
        hooks += [(name_in, read), (name_out, splice)]
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=hooks)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced size (seconds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        n_layers, d_model, d_sae, n_pos, batch = 4, 64, 4096, 16, 1
    else:
        n_layers, d_model, d_sae, n_pos, batch = 12, 256, 16384, 64, 1
    print(machine_line("bench_clt_splice"))
    print(
        f"{n_layers} layers, d_model {d_model}, CLT d_sae {d_sae} per layer, {batch}x{n_pos} tokens"
    )
    model = build_model(n_layers=n_layers, d_model=d_model, n_ctx=n_pos)
    tokens = torch.randint(
        0, int(model.cfg.d_vocab), (batch, n_pos), generator=torch.Generator().manual_seed(0)
    )
    clt = build_clt(model, tokens, d_sae, active=32, seed=1)
    lens = Lens(model, clt.sites(), check_model_name=False)

    def ours() -> Any:
        with torch.no_grad():
            return lens.forward(tokens, RunPlan())

    plain_time, _ = best_of(lambda: model(tokens), args.repeats)
    dense_time, dense = best_of(lambda: dense_errors(model, clt, tokens), args.repeats)
    ours_time, result = best_of(ours, args.repeats)
    worst = 0.0
    for k, site in enumerate(clt.hooks_out):
        scale = float(dense[k].abs().max())
        worst = max(worst, float((result.errors[site] - dense[k]).abs().max()) / scale)
    live = sum(
        int((result.features[s] != 0).reshape(-1, d_sae).any(0).sum()) for s in clt.hooks_out
    )
    print(f"live features (non-zero somewhere in the batch): {live} of {n_layers * d_sae}")
    print(f"plain model forward:       {plain_time:8.4f} s")
    print(f"dense splice (raw hooks):  {dense_time:8.4f} s")
    print(
        f"feature-lens CLT splice:   {ours_time:8.4f} s  ({dense_time / ours_time:.2f}x faster than dense)"
    )
    print(f"largest relative difference of the error terms: {worst:.2e}")
    if worst > 1e-4:
        print("DISAGREEMENT: the error terms differ")
        sys.exit(1)


if __name__ == "__main__":
    main()
