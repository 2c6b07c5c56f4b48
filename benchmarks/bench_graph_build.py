"""Benchmark: what building the graph adds on top of the kernels, and graph file speed.

1. `attribute(method="direct")` end to end against the bare computation on the same inputs: the
   per-prompt states, the kernels' node effects (`direct_node_effects`) over the same candidate
   nodes, the same top-k selection, and the kernel's edge matrix (`direct_edge_matrix`) between the
   kept nodes. What `attribute` adds is the graph: accumulating over prompts, the node table, the
   adjacency, the metric's baseline run. Target: at most 20 % on top (ratio <= 1.2). The script
   checks the graph's edges equal the bare matrix (exit status 1 if not).
2. Saving and loading a graph of 10,000 nodes and 10^6 edges (format v2), against writing and
   reading the same tensors with safetensors alone.

Run: `python benchmarks/bench_graph_build.py [--quick]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from common import best_of, build_model, build_saes, machine_line
from safetensors.torch import load_file, save_file

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    PromptSet,
    attribute,
    candidate_nodes,
    direct_edge_matrix,
    direct_node_effects,
    prompt_states,
)
from feature_lens.graph import METRIC_NODE, AttributionGraph, NodeTable
from feature_lens.graph.node import feature

TARGET_RATIO = 1.2


def bare(lens: Lens, prompts: PromptSet, max_nodes: int) -> torch.Tensor:
    """The kernels alone: node effects, top-k, the edge matrix (one prompt)."""
    metric = LogitDiff(correct=1, wrong=2)
    (state,) = prompt_states(lens, prompts, "zero")
    nodes = candidate_nodes(lens, state, "keep")
    effects = direct_node_effects(lens, state, metric, nodes)
    kept = sorted(effects, key=lambda n: -abs(effects[n]))[:max_nodes]
    targets = [n for n in kept if n.kind == "feature"]
    return direct_edge_matrix(lens, state, kept, targets, mlp="stop", batch_size=64)


def build(args: argparse.Namespace) -> bool:
    n_layers, d_model, d_sae, n_pos, max_nodes = (
        (2, 64, 256, 12, 48) if args.quick else (4, 128, 1024, 24, 256)
    )
    model = build_model(n_layers=n_layers, d_model=d_model)
    tokens = torch.randint(
        3, int(model.cfg.d_vocab), (1, n_pos), generator=torch.Generator().manual_seed(1)
    )
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]
    lens = Lens(model, build_saes(model, tokens, d_sae, sites))
    prompts = PromptSet(tokens)
    metric = LogitDiff(correct=1, wrong=2)
    print(
        f"\n== direct attribution, random model: {n_layers} layers, d_model {d_model}, d_sae "
        f"{d_sae} at every resid_post, {n_pos} tokens, max_nodes {max_nodes}, zero baseline"
    )
    repeats = 3

    def ours() -> AttributionGraph:
        return attribute(
            lens, prompts, metric, method="direct", max_nodes=max_nodes, progress=False
        )

    t_bare, matrix = best_of(lambda: bare(lens, prompts, max_nodes), repeats)
    t_ours, graph = best_of(ours, repeats)
    dense = graph.dense_adjacency()
    features = graph.table.is_kind("feature")
    n = len(graph.table) - 1
    agree = torch.allclose(dense[:n][features[:n]][:, :n].T, matrix.double(), atol=1e-6, rtol=0)
    ratio = t_ours / t_bare
    print(f"bare kernels            {t_bare * 1e3:9.1f} ms")
    print(f"attribute (end to end)  {t_ours * 1e3:9.1f} ms   {graph.n_edges} edges, {n} nodes")
    print(
        f"ratio ours / bare       {ratio:9.2f}   (target <= {TARGET_RATIO}; edges agree: {agree})"
    )
    return agree


def io(args: argparse.Namespace) -> None:
    n, e = (2_000, 100_000) if args.quick else (10_000, 1_000_000)
    print(f"\n== graph files: {n} nodes, {e} edges (format v2)")
    generator = torch.Generator().manual_seed(0)
    nodes = [feature(f"blocks.{i % 8}.hook_resid_post", i, i % 32) for i in range(n - 1)]
    table = NodeTable.from_nodes(
        [*nodes, METRIC_NODE],
        layer=[i % 8 for i in range(n - 1)] + [8],
        order=[i % 8 for i in range(n - 1)] + [99],
        effect=torch.randn(n, dtype=torch.float64, generator=generator),
    )
    index = torch.randint(0, n, (2, e), generator=generator)
    graph = AttributionGraph(
        "direct", "m", table, index, torch.randn(e, dtype=torch.float64, generator=generator)
    ).coalesced()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.json"
        t_save, _ = best_of(lambda: graph.save(path, overwrite=True), 3)
        t_load, loaded = best_of(lambda: AttributionGraph.load(path), 3)
        assert torch.equal(loaded.edge_weight, graph.edge_weight)
        raw = Path(folder) / "raw.safetensors"
        tensors = {"edge_index": graph.edge_index, "edge_weight": graph.edge_weight}
        t_raw_save, _ = best_of(lambda: save_file(tensors, raw) or raw, 3)
        t_raw_load, _ = best_of(lambda: load_file(raw), 3)
        size = path.stat().st_size + path.with_suffix(".safetensors").stat().st_size
    print(f"save  {t_save:7.3f} s   (safetensors of the edges alone {t_raw_save:.3f} s)")
    print(f"load  {t_load:7.3f} s   (safetensors of the edges alone {t_raw_load:.3f} s)")
    print(f"files {size / 2**20:7.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, runs in seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line("bench_graph_build"))
    agree = build(args)
    io(args)
    print(machine_line("bench_graph_build (end)"))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
