"""Benchmark: the dashboards' fused corpus pass against the two passes it replaced (issue 13, item 7).

Before the fusion a dashboard ran two forwards over its corpus: `densities` (every feature's
density, to choose the top features) and `feature_activations` (the chosen features' activations,
with the correlation sums). `corpus_pass` runs one forward and gives both, plus the pages'
statistics. Embedded model, all six SAEs, the top 8 features per site, 16,000 corpus prompts by
default; both sides timed in the same run (best of `--repeats`), and the densities and the chosen
features checked equal.

`--shape gpt2`: instead, the GPT-2-small-shaped random model of `bench_scale.py` (12 layers,
d_model 768, vocabulary 50,257) with a random TopK SAE (d_sae 24,576, k 40) at every
`hook_resid_post`, over `--prompts` random prompts of 48 tokens (default there: 256).

    python benchmarks/bench_corpus_pass.py [--prompts N] [--repeats 1] [--threads 2]
                                           [--shape zoo|gpt2] [--quick]

`--quick`: 2,000 prompts (zoo) or 16 (gpt2).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see common.py)

import torch
from common import load_line, machine_line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=None)
    parser.add_argument("--shape", choices=["zoo", "gpt2"], default="zoo")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick and args.prompts is None:
        args.prompts = 2_000 if args.shape == "zoo" else 16
    torch.set_num_threads(args.threads)

    from feature_lens import Lens
    from feature_lens.dashboard.data import (
        corpus_pass,
        densities,
        feature_activations,
        prepare_dataset,
        top_features,
    )
    from feature_lens.dashboard.tables import Moments
    from feature_lens.zoo import corpus_texts

    if args.shape == "zoo":
        n = args.prompts or 16_000
        lens = Lens.load()
        dataset = prepare_dataset(lens, corpus_texts(n, n_ctx=int(lens.model.cfg.n_ctx)))
    else:
        from bench_scale import GPT2_SMALL, build_saes
        from common import build_model

        n = args.prompts or 256
        model = build_model(**GPT2_SMALL).requires_grad_(False)
        sites = [f"blocks.{layer}.hook_resid_post" for layer in range(GPT2_SMALL["n_layers"])]
        lens = Lens(model, build_saes(model, sites, 24_576, 40))
        generator = torch.Generator().manual_seed(1)
        dataset = prepare_dataset(
            lens, torch.randint(1, GPT2_SMALL["d_vocab"], (n, 48), generator=generator)
        )
    print(machine_line("bench_corpus_pass"))
    print(load_line("start"))
    print(
        f"{args.shape}, {len(lens.sites)} SAEs, {n} prompts of {dataset.tokens.shape[1]} tokens, "
        f"top 8 features per site; best of {args.repeats}"
    )

    def two_passes() -> tuple[dict[str, torch.Tensor], list[object]]:
        density = densities(lens, dataset)
        chosen = top_features(density, 8)
        moments = Moments([(f.site, int(f.index or 0)) for f in chosen])
        feature_activations(lens, dataset, chosen, moments=moments)
        return density, list(chosen)

    def fused() -> tuple[dict[str, torch.Tensor], list[object]]:
        result = corpus_pass(lens, dataset, lambda d: top_features(d, 8))
        return result.density, list(result.features)

    timings: dict[str, float] = {}
    outputs: dict[str, tuple[dict[str, torch.Tensor], list[object]]] = {}
    for _ in range(args.repeats):
        for name, job in (("two passes", two_passes), ("fused pass", fused)):
            start = time.perf_counter()
            outputs[name] = job()
            timings[name] = min(timings.get(name, float("inf")), time.perf_counter() - start)
    (d_two, f_two), (d_one, f_one) = outputs["two passes"], outputs["fused pass"]
    worst = max(float((d_two[s] - d_one[s]).abs().max()) for s in d_two)
    for name, seconds in timings.items():
        print(f"  {name:<11} {seconds:7.1f} s")
    print(
        f"  fused / two passes: {timings['fused pass'] / timings['two passes']:.2f} of the time; "
        f"densities equal to {worst:.1e}, chosen features equal: {f_two == f_one}"
    )
    print(load_line("end"))


if __name__ == "__main__":
    main()
