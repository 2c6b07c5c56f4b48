"""Benchmark: attribution at GPT-2-small scale, and how its memory grows with the SAE width.

A random GPT-2-small-shaped model (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50257,
TransformerLens's default initialisation, built from a config) with a random standard SAE of
`d_sae` features at every `blocks.L.hook_resid_post`, encoder biases set so that about 32 features
fire per token, and a 24-token random prompt with the zero baseline. Two phases are measured:

(a) nodes: the clean and baseline node values, `candidate_nodes` (every active feature at every
    position, every error term, every token) and `gradient_node_effects` for a logit difference
    at the last position;
(b) edges: of the 100 feature nodes with the largest |effect|, for every layer L the edges from
    those at layer L to those at layer L+1 (`gradient_edges`, one batch per layer pair).

Each `d_sae` runs in its own subprocess, so peaks do not mix. Peak memory is the Linux peak RSS
(`VmHWM`, reset through `/proc/self/clear_refs` at the start of each phase) minus the RSS at that
start: what the phase adds on top of the weights. Memory must grow about linearly in `d_sae`
(SAE weights and `[pos, d_sae]` activations), never with `d_sae` squared: the script fits the
exponent of peak vs d_sae over the sizes and fails (exit 1) if it exceeds 1.5.

Run: `python benchmarks/bench_scale.py [--quick]` (default d_sae 6144, 12288, 24576; 2 threads).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
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
from common import build_model, build_saes, machine_line

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    PromptState,
    baseline_values,
    candidate_nodes,
    gradient_edges,
    gradient_node_effects,
    node_values,
)

MAX_EXPONENT = 1.5
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
    "n_ctx": 64,
}


def memory_kib() -> tuple[int, int]:
    """(current RSS, peak RSS since the last reset) of this process in KiB."""
    status = open("/proc/self/status").read()  # noqa: SIM115 -- tiny procfs read
    rss = re.search(r"VmRSS:\s+(\d+)", status)
    hwm = re.search(r"VmHWM:\s+(\d+)", status)
    if rss is None or hwm is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak
    return int(rss.group(1)), int(hwm.group(1))


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run `fn`; return its result, the wall time in seconds and the peak memory it added in MiB
    (peak RSS during the call minus the RSS before it)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current RSS
    except OSError:
        print("   (cannot reset the peak RSS: the peak below includes earlier phases)")
    start_rss, _ = memory_kib()
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    _, peak = memory_kib()
    return out, seconds, (peak - start_rss) / 1024


def worker(d_sae: int, model_shape: dict[str, int], n_pos: int, top: int) -> dict[str, Any]:
    """Build the model and SAEs, measure both phases, return the numbers."""
    t0 = time.perf_counter()
    model = build_model(**model_shape)
    tokens = torch.randint(
        1, model_shape["d_vocab"], (1, n_pos), generator=torch.Generator().manual_seed(1)
    )
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(model_shape["n_layers"])]
    lens = Lens(model, build_saes(model, tokens, d_sae, sites, active=32))
    with torch.no_grad():
        correct, wrong = model(tokens)[0, -1].topk(2).indices.tolist()
    metric = LogitDiff(correct, wrong)
    weights_mib = memory_kib()[0] / 1024
    print(f"   d_sae {d_sae}: built in {time.perf_counter() - t0:.0f} s, RSS {weights_mib:.0f} MiB")

    def nodes_phase() -> tuple[PromptState, dict[Node, float]]:
        state = PromptState(
            tokens,
            None,
            node_values(lens, tokens),
            baseline_values(lens, PromptSet(tokens), "zero"),
        )
        nodes = candidate_nodes(lens, state, "keep")
        return state, gradient_node_effects(lens, state, metric, nodes)

    (state, effects), t_nodes, mem_nodes = measure(nodes_phase)
    features = [n for n in effects if n.kind == "feature"]
    kept = sorted(features, key=lambda n: -abs(effects[n]))[:top]
    by_layer = {s: [n for n in kept if n.site == s] for s in sites}

    def edges_phase() -> dict[tuple[Node, Node], float]:
        edges: dict[tuple[Node, Node], float] = {}
        for up_site, down_site in itertools.pairwise(sites):
            up, down = by_layer[up_site], by_layer[down_site]
            if up and down:
                edges.update(gradient_edges(lens, state, up, down, batch_size=max(1, len(down))))
        return edges

    edges, t_edges, mem_edges = measure(edges_phase)
    return {
        "d_sae": d_sae,
        "weights_mib": weights_mib,
        "nodes": len(effects),
        "nodes_s": t_nodes,
        "nodes_mib": mem_nodes,
        "top_per_layer": [len(v) for v in by_layer.values()],
        "edges": len(edges),
        "edges_s": t_edges,
        "edges_mib": mem_edges,
        "total_peak_mib": weights_mib + max(mem_nodes, mem_edges),
    }


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y against log x (y ~ x^slope)."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model, runs in seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--d-sae", type=int, nargs="+", help="SAE widths (default 6144 12288 24576)"
    )
    parser.add_argument("--tokens", type=int, default=24, help="prompt length (default 24)")
    parser.add_argument("--top", type=int, default=100, help="nodes kept for edges (default 100)")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = QUICK_MODEL if args.quick else GPT2_SMALL
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args.worker, shape, args.tokens, args.top)))
        return 0

    widths = args.d_sae or ([512, 1024, 2048] if args.quick else [6144, 12288, 24576])
    print(machine_line("bench_scale"))
    print(f"   model {shape}, {args.tokens} tokens, top {args.top} nodes for edges")
    results = []
    for d_sae in widths:
        command = [sys.executable, __file__, "--worker", str(d_sae), "--threads", str(args.threads)]
        command += ["--tokens", str(args.tokens), "--top", str(args.top)]
        command += ["--quick"] if args.quick else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = done.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")))
        if done.returncode != 0:
            print(done.stderr[-3000:])
            print(f"FAILED: the d_sae={d_sae} worker exited with {done.returncode}")
            return 1
        results.append(json.loads(next(ln for ln in lines if ln.startswith("RESULT "))[7:]))

    print(
        f"\n{'d_sae':>7} {'weights':>9} {'nodes':>7} {'(a) time':>9} {'(a) peak+':>10} "
        f"{'edges':>7} {'(b) time':>9} {'(b) peak+':>10} {'total peak':>11}"
    )
    for r in results:
        print(
            f"{r['d_sae']:>7} {r['weights_mib']:>7.0f}Mi {r['nodes']:>7} {r['nodes_s']:>8.2f}s "
            f"{r['nodes_mib']:>8.0f}Mi {r['edges']:>7} {r['edges_s']:>8.2f}s "
            f"{r['edges_mib']:>8.0f}Mi {r['total_peak_mib']:>9.0f}Mi"
        )
    print("   top nodes per layer (last width):", results[-1]["top_per_layer"])
    xs = [float(r["d_sae"]) for r in results]
    worst = 0.0
    if len(xs) >= 2:
        for label, key in (
            ("(a) peak added", "nodes_mib"),
            ("(b) peak added", "edges_mib"),
            ("total peak", "total_peak_mib"),
        ):
            slope = exponent(xs, [float(r[key]) for r in results])
            worst = max(worst, slope)
            print(f"   fitted exponent of {label} vs d_sae: {slope:.2f} (quadratic would be 2)")
    if worst > MAX_EXPONENT:
        print(f"FAILED: memory grows faster than d_sae^{MAX_EXPONENT}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
