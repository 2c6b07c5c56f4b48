"""Benchmark: attribution at GPT-2-small scale (issue 13's workload), phases (a), (b), (c).

The workload: a random GPT-2-small-shaped model (12 layers, d_model 768, 12 heads, d_mlp 3072,
vocabulary 50,257, TransformerLens's default initialisation, built from a config), a random SAE-Lens
TopK SAE (k = 40 features firing per token) of `d_sae` = 24,576 features at every
`blocks.L.hook_resid_post`, and one random prompt of 64 tokens with the zero baseline and a logit
difference at the last position. Through the public API:

(a) scores: `prompt_states` and attribution-patching scores of every candidate node (every active
    feature at every position, every error term, every token);
(b) edges among the top 100 feature nodes (by |score|) of each layer, for every adjacent layer
    pair L -> L+1 (11 x 100 x 100), with `gradient_edge_matrix`;
(c) `attribute(max_nodes=1000, edges=True)` from scratch: a circuit-tracer-sized graph (its FLOPs
    are counted only with `--count-c`: counting runs the phase again).
(e) exact patching of every candidate node (`attribute(method="exact", edges=False)`: one
    forward row per candidate, quadratic in the prompt's length), only with `--exact both`;
(f) exact patching of the top `--preselect` nodes pre-selected by attribution patching
    (`attribute(method="exact", preselect=K, edges=False)`), with `--exact pre` or `both`; with
    both, the K nodes' effects are checked equal to (e)'s;
(d) edges of one layer pair computed batched (`gradient_edge_matrix`) against one full-model
    backward per downstream node (the Sparse Feature Circuits way: a forward through the whole
    spliced model, the downstream feature read from a dense encode, one backward each); the same
    numbers are checked equal.

Each configuration runs in a fresh subprocess. Reported per phase: wall time, CPU time (all
threads; on a shared machine wall time includes other jobs' time slices), the process's peak
RSS (`VmHWM`, weights included, reset at the start of the phase), the FLOPs executed (torch's
`FlopCounterMode`, counted in a second, untimed run) and the achieved fraction of this machine's
measured float32 matmul rate (the physical floor). `--sweep` adds (a), (b) and (f) at 16/64/128
tokens and at d_sae 6,144/12,288/24,576 (GPT-2 shape), and (e) against (f) at 16/64/128 tokens on
the small model (4 layers, d_model 128, vocabulary 1,000, d_sae 2,048: (e) at GPT-2 shape would be
~31,500 forward rows of 64 tokens), each with fitted exponents of time and peak memory. The load
average is printed at the start and the end; above 2 (the 2 cores) the run is flagged.

Run: `python benchmarks/bench_scale.py [--quick] [--sweep] [--threads 2]`. Goals (issue 13):
(a)+(b) <= 60 s and peak <= 6 GB; (c) <= 120 s and <= 8 GB; (d) batched >= 5x faster.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import itertools

import torch
from common import build_model, load_line, machine_line
from torch.utils.flop_counter import FlopCounterMode

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    attribute,
    candidate_nodes,
    gradient_edge_matrix,
    gradient_node_effects,
)
from feature_lens.attribution.state import StreamedStates

GPT2_SMALL: dict[str, int] = {
    "n_layers": 12,
    "d_model": 768,
    "n_heads": 12,
    "d_mlp": 3072,
    "d_vocab": 50257,
    "n_ctx": 1024,
}
QUICK_MODEL: dict[str, int] = {
    "n_layers": 4,
    "d_model": 128,
    "n_heads": 4,
    "d_mlp": 512,
    "d_vocab": 1000,
    "n_ctx": 256,
}
GOALS = {"ab_s": 60.0, "ab_gb": 6.0, "c_s": 120.0, "c_gb": 8.0, "speedup": 5.0}


def peak_gb() -> float:
    """Peak RSS of this process since the last reset, in GB (10^9 bytes)."""
    status = open("/proc/self/status").read()  # noqa: SIM115 -- tiny procfs read
    match = re.search(r"VmHWM:\s+(\d+)", status)
    return int(match.group(1)) * 1024 / 1e9 if match else float("nan")


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


CPU_SECONDS: dict[int, float] = {}
"""CPU seconds (all threads) of the last `timed` call, keyed by nothing but 0: on a machine
shared with other jobs, wall time counts their time slices too, CPU time does not."""


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Result, wall seconds, peak RSS in GB (weights included) of one call."""
    reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    CPU_SECONDS[0] = time.process_time() - cpu
    return out, time.perf_counter() - start, peak_gb()


def flops(fn: Callable[[], Any]) -> float:
    """Floating-point operations `fn` executes (torch's counter: matmuls, convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def matmul_rate() -> float:
    """This machine's float32 matmul rate in FLOP/s at the current thread count (best of 5)."""
    a, b = torch.randn(2048, 768), torch.randn(768, 3072)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048 * 768 * 3072 / best


def build_saes(model: Any, sites: list[str], d_sae: int, k: int) -> list[Any]:
    """Random TopK SAEs (k features fire per token) with unit-norm Gaussian columns."""
    import sae_lens

    d_in = int(model.cfg.d_model)
    generator = torch.Generator().manual_seed(0)
    saes = []
    for site in sites:
        sae = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k))
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=generator) / d_in**0.5)
            sae.W_dec.copy_(torch.randn(d_sae, d_in, generator=generator) / d_in**0.5)
            sae.b_enc.zero_()
            sae.b_dec.copy_(0.1 * torch.randn(d_in, generator=generator))
        sae.cfg.metadata.hook_name = site
        sae.cfg.metadata.model_name = "bench-random-model"
        saes.append(sae.eval().requires_grad_(False))
    return saes


def per_node_edges(lens: Lens, state: Any, upstream: list[Node], targets: list[Node]) -> Any:
    """The Sparse Feature Circuits way: per downstream node, a full forward of the spliced model
    with leaves at every site, the node read from its site's dense encode, one backward."""
    from feature_lens.attribution.state import gradient_score_matrix
    from feature_lens.lens import EMBED_SITE, RunPlan

    out = torch.zeros(len(upstream), len(targets))
    sites = [*lens.sites, EMBED_SITE]
    for j, d in enumerate(targets):
        plan = RunPlan(leaf_sites=sites, keep_graph=True)
        result = lens.forward(state.tokens, plan)
        value = result.features[d.site][0, d.pos, d.index]
        present = [s for s in sites if s in result.leaves]
        grads = torch.autograd.grad(value, [result.leaves[s] for s in present], allow_unused=True)
        grad_map = {
            s: torch.zeros_like(result.leaves[s]) if g is None else g
            for s, g in zip(present, grads, strict=True)
        }
        out[:, j] = gradient_score_matrix(lens, state, grad_map, upstream)[0]
    return out


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Build the workload, run the phases asked for, return the numbers."""
    torch.set_num_threads(args.threads)
    shape = QUICK_MODEL if args.quick or args.shape == "small" else GPT2_SMALL
    t0 = time.perf_counter()
    model = build_model(**shape).requires_grad_(False)
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(shape["n_layers"])]
    lens = Lens(model, build_saes(model, sites, args.d_sae, args.k))
    tokens = torch.randint(
        1, shape["d_vocab"], (1, args.tokens), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        correct, wrong = model(tokens)[0, -1].topk(2).indices.tolist()
    metric = LogitDiff(correct, wrong)
    prompts = PromptSet(tokens)
    out: dict[str, Any] = {
        "d_sae": args.d_sae,
        "tokens": args.tokens,
        "build_s": time.perf_counter() - t0,
        "weights_gb": peak_gb(),
        "rate": matmul_rate(),
    }

    def phase_a() -> tuple[Any, dict[Node, float]]:
        # What `attribute(method="attribution")` does: one clean forward gives the state and the
        # metric's gradients, then every candidate is scored.
        states = StreamedStates(lens, prompts, "zero")
        state = next(states.iterate(gradients_for=metric))
        nodes = candidate_nodes(lens, state, "keep")
        return state, gradient_node_effects(lens, state, metric, nodes)

    (state, effects), out["a_s"], out["a_gb"] = timed(phase_a)
    out["a_cpu"] = CPU_SECONDS[0]
    out["nodes"] = len(effects)
    features = [n for n in effects if n.kind == "feature"]
    top = {
        site: sorted((n for n in features if n.site == site), key=lambda n: -abs(effects[n]))[
            : args.top
        ]
        for site in sites
    }
    pairs = [(top[a], top[b]) for a, b in itertools.pairwise(sites) if top[a] and top[b]]

    def phase_b() -> list[torch.Tensor]:
        return [gradient_edge_matrix(lens, state, up, down) for up, down in pairs]

    matrices, out["b_s"], out["b_gb"] = timed(phase_b)
    out["b_cpu"] = CPU_SECONDS[0]
    out["edges"] = sum(int((m != 0).sum()) for m in matrices)
    out["pairs"] = len(pairs)
    if args.flops:
        out["a_flop"] = flops(phase_a)
        out["b_flop"] = flops(phase_b)
    if args.compare:
        up, down = pairs[len(pairs) // 2]
        down = down[: args.compare]
        batched, out["d_batched_s"], _ = timed(lambda: gradient_edge_matrix(lens, state, up, down))
        out["d_batched_cpu"] = CPU_SECONDS[0]
        single, out["d_single_s"], _ = timed(lambda: per_node_edges(lens, state, up, down))
        out["d_single_cpu"] = CPU_SECONDS[0]
        out["d_targets"] = len(down)
        out["d_max_diff"] = float((batched - single).abs().max())
        out["d_scale"] = float(single.abs().max())
    if args.exact in ("pre", "both"):
        exact_phases(args, lens, prompts, metric, out)
    if args.full:

        def phase_c() -> Any:
            return attribute(
                lens, prompts, metric, max_nodes=1000, edges=True, baseline="zero", progress=False
            )

        graph, out["c_s"], out["c_gb"] = timed(phase_c)
        out["c_cpu"] = CPU_SECONDS[0]
        out["c_nodes"] = len(graph.nodes)
        if args.count_c:
            out["c_flop"] = flops(phase_c)
    return out


def exact_phases(
    args: argparse.Namespace, lens: Lens, prompts: PromptSet, metric: Any, out: dict[str, Any]
) -> None:
    """(f) exact patching of the top K pre-selected by attribution patching; with `--exact both`
    also (e) exact patching of every candidate, and the K nodes' effects compared."""

    def run(preselect: int | None) -> Any:
        return attribute(
            lens,
            prompts,
            metric,
            method="exact",
            baseline="zero",
            preselect=preselect,
            max_nodes=args.preselect,
            edges=False,
            progress=False,
        )

    pre, out["f_s"], out["f_gb"] = timed(lambda: run(args.preselect))
    out["f_cpu"] = CPU_SECONDS[0]
    if args.exact == "both":
        full, out["e_s"], out["e_gb"] = timed(lambda: run(None))
        out["e_cpu"] = CPU_SECONDS[0]
        shared = [i for i in pre.nodes if pre.nodes[i].kind != "logit" and i in full.nodes]
        out["ef_shared"] = len(shared)
        out["ef_max_diff"] = max(
            (abs(pre.nodes[i].effect - full.nodes[i].effect) for i in shared), default=0.0
        )


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (y ~ x^slope)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )


def run_worker(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """One configuration in a fresh subprocess (peaks and caches do not mix)."""
    settings = {**vars(args), **overrides}
    command = [sys.executable, __file__, "--worker"]
    for key, value in settings.items():
        if key in ("full", "flops"):
            command += [] if value else [f"--no-{key}"]
        elif key not in ("worker", "sweep") and value is not None and value is not False:
            flag = "--" + key.replace("_", "-")
            command += [flag] if value is True else [flag, str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        print(done.stdout[-2000:], done.stderr[-4000:])
        raise SystemExit(f"worker {overrides} failed with exit status {done.returncode}")
    return json.loads(line[7:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model: a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--d-sae", type=int, default=None, help="SAE width (default 24576)")
    parser.add_argument("--k", type=int, default=40, help="TopK features per token (default 40)")
    parser.add_argument("--tokens", type=int, default=64, help="prompt length (default 64)")
    parser.add_argument("--top", type=int, default=100, help="top nodes per layer for (b)")
    parser.add_argument("--compare", type=int, default=None, help="targets for (d)")
    parser.add_argument("--no-full", dest="full", action="store_false", help="skip (c)")
    parser.add_argument("--no-flops", dest="flops", action="store_false", help="skip counting")
    parser.add_argument("--count-c", action="store_true", help="also count (c)'s FLOPs (slow)")
    parser.add_argument("--sweep", action="store_true", help="prompt-length and d_sae sweeps")
    parser.add_argument(
        "--exact",
        choices=["none", "pre", "both"],
        default="none",
        help="also time exact patching: of the top --preselect nodes (pre), and of every node",
    )
    parser.add_argument("--preselect", type=int, default=100, help="K for (f) (default 100)")
    parser.add_argument("--shape", choices=["gpt2", "small"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.d_sae is None:
        args.d_sae = 2048 if args.quick else 24576
    if args.compare is None:
        args.compare = 20 if args.quick else 100
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return 0

    torch.set_num_threads(args.threads)
    print(machine_line("bench_scale"))
    print(load_line("start"))
    main_run = run_worker(args)
    r = main_run
    rate = r["rate"]
    print(
        f"   model {'quick' if args.quick else 'GPT-2-small shape'}, d_sae {r['d_sae']}, ", end=""
    )
    print(f"{r['tokens']} tokens, {r['nodes']} candidate nodes; measured matmul rate ", end="")
    print(f"{rate / 1e9:.0f} GFLOP/s; weights RSS {r['weights_gb']:.2f} GB")
    print(
        f"\n{'phase':<34} {'time':>8} {'CPU time':>9} {'peak RSS':>9} {'GFLOP':>8} "
        f"{'of peak rate':>12}"
    )
    rows = [("(a) scores", "a"), (f"(b) edges, {r['pairs']} x {args.top} x {args.top}", "b")]
    if args.full:
        rows.append(("(c) attribute(max_nodes=1000)", "c"))
    if "f_s" in r:
        rows.append((f"(f) exact, top {args.preselect} pre-selected", "f"))
    if "e_s" in r:
        rows.append(("(e) exact, every candidate", "e"))
    for label, key in rows:
        flop = r.get(f"{key}_flop")
        frac = f"{flop / r[f'{key}_s'] / rate:>11.1%}" if flop else f"{'-':>11}"
        gflop = f"{flop / 1e9:>8.1f}" if flop else f"{'-':>8}"
        print(
            f"{label:<34} {r[f'{key}_s']:>7.2f}s {r[f'{key}_cpu']:>8.2f}s {r[f'{key}_gb']:>7.2f}GB "
            f"{gflop} {frac}"
        )
    ab_s, ab_gb = r["a_s"] + r["b_s"], max(r["a_gb"], r["b_gb"])
    verdicts = [
        (
            "(a)+(b)",
            ab_s <= GOALS["ab_s"] and ab_gb <= GOALS["ab_gb"],
            f"{ab_s:.1f} s, {ab_gb:.2f} GB",
        ),
    ]
    if args.full:
        ok = r["c_s"] <= GOALS["c_s"] and r["c_gb"] <= GOALS["c_gb"]
        verdicts.append(("(c)", ok, f"{r['c_s']:.1f} s, {r['c_gb']:.2f} GB"))
    if "d_single_s" in r:
        speedup = r["d_single_s"] / r["d_batched_s"]
        print(
            f"\n(d) {r['d_targets']} targets, one layer pair: batched {r['d_batched_s']:.2f} s, "
            f"one backward per node {r['d_single_s']:.2f} s: {speedup:.1f}x (CPU time "
            f"{r['d_single_cpu'] / r['d_batched_cpu']:.1f}x; max |diff| "
            f"{r['d_max_diff']:.1e} of {r['d_scale']:.1e})"
        )
        verdicts.append(("(d) speedup", speedup >= GOALS["speedup"], f"{speedup:.1f}x"))
    if "ef_max_diff" in r:
        print(f"   (e)/(f): top-K effects vs every candidate's, max |diff| {r['ef_max_diff']:.1e}")
    for label, ok, text in verdicts:
        print(f"   {label}: {text} -> {'met' if ok else 'NOT met'}")
    if args.sweep:
        sweep(args)
    print(load_line("end"))
    agree = "d_max_diff" not in r or r["d_max_diff"] <= 1e-4 * max(1.0, r["d_scale"])
    return 0 if agree else 1


def sweep(args: argparse.Namespace) -> None:
    """Time and peak memory against prompt length and d_sae, with fitted exponents: (a), (b) and
    (f) at the main shape; (e) against (f) on the small model (see the module doc)."""
    lengths = [8, 16, 32] if args.quick else [16, 64, 128]
    widths = [512, 1024, 2048] if args.quick else [6144, 12288, 24576]
    common = {"full": False, "flops": False, "compare": 0}
    runs = [
        ("tokens", "tokens", lengths, {"exact": "pre"}, ("a", "b", "f")),
        ("d_sae", "d_sae", widths, {"exact": "pre"}, ("a", "b", "f")),
        (
            "tokens, small model, exact",
            "tokens",
            lengths,
            {"exact": "both", "shape": "small", "d_sae": 2048},
            ("e", "f"),
        ),
    ]
    names = {"a": "(a) scores", "b": "(b) edges", "e": "(e) exact, all", "f": "(f) exact, top K"}
    for title, key, values, extra, phases in runs:
        results = [run_worker(args, **common, **extra, **{key: v}) for v in values]
        print(f"\nsweep over {title} (K = {args.preselect}; load {os.getloadavg()[0]:.1f}):")
        print(f"{key:>7}" + "".join(f" {names[p]:>18} {'peak':>7}" for p in phases))
        for v, res in zip(values, results, strict=True):
            cells = "".join(f" {res[p + '_s']:>17.2f}s {res[p + '_gb']:>5.2f}GB" for p in phases)
            extra_text = ""
            if "ef_max_diff" in res:
                extra_text = f"  (top-K effects vs all: max |diff| {res['ef_max_diff']:.1e})"
            print(f"{v:>7}{cells}{extra_text}")
        xs = [float(v) for v in values]
        for p in phases:
            t = exponent(xs, [res[p + "_s"] for res in results])
            m = exponent(xs, [res[p + "_gb"] for res in results])
            print(f"   exponent vs {key}: {names[p]} time {t:.2f}, peak RSS {m:.2f}")


if __name__ == "__main__":
    sys.exit(main())
