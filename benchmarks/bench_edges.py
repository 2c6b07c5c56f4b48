"""Benchmark: batched-backward edges vs one backward pass per downstream node.

`gradient_edges` repeats the prompt along the batch, makes row r's target downstream node r, and
gets every row's gradients from one backward pass of the sum. The baseline, written here by hand,
runs one forward pass with zero leaves at every site (`RunPlan(leaf_sites=..., keep_graph=True)`)
and then one `torch.autograd.grad(target_j, leaves, retain_graph=True)` per downstream node j,
scoring the upstream nodes of each site with one vectorised product
`(grad[pos_u] . W_dec[u]) * (a_u - b_u)`.

Both compute the same first-order edges (zero baseline, so `a_u - b_u = a_u`); the script checks
they agree and exits non-zero if they do not. Nodes are feature nodes at given positions: the
downstream ones at the last site, the upstream ones spread over the earlier sites.

Run: `python benchmarks/bench_edges.py [--quick]`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from common import best_of, build_model, build_saes, machine_line
from torch import Tensor

from feature_lens import Lens
from feature_lens.attribution import (
    Node,
    PromptSet,
    PromptState,
    candidate_nodes,
    gradient_edges,
    prompt_states,
)
from feature_lens.lens import RunPlan


@dataclass(frozen=True)
class Size:
    """Shape of the random model and of the benchmark."""

    n_layers: int
    d_model: int
    d_sae: int
    n_pos: int
    n_downstream: int
    n_upstream: int
    batch_size: int
    repeats: int


FULL = Size(
    n_layers=4,
    d_model=128,
    d_sae=1024,
    n_pos=16,
    n_downstream=256,
    n_upstream=512,
    batch_size=128,
    repeats=3,
)
QUICK = Size(
    n_layers=2,
    d_model=64,
    d_sae=256,
    n_pos=8,
    n_downstream=128,
    n_upstream=128,
    batch_size=128,
    repeats=2,
)


def spread(nodes: Sequence[Node], n: int) -> list[Node]:
    """About `n` nodes taken evenly from `nodes`."""
    step = max(1, len(nodes) // n)
    return list(nodes[::step][:n])


def upstream_groups(
    lens: Lens, state: PromptState, upstream: Sequence[Node]
) -> dict[str, tuple[list[Node], Tensor, Tensor, Tensor]]:
    """Per upstream site, in forward order: its nodes, their positions, feature indices and
    a - b, as tensors (so a site's scores are one vectorised product)."""
    groups: dict[str, tuple[list[Node], Tensor, Tensor, Tensor]] = {}
    for site in sorted({u.site for u in upstream}, key=lens.site_order):
        nodes = [u for u in upstream if u.site == site]
        pos = torch.tensor([u.pos for u in nodes])
        index = torch.tensor([u.index for u in nodes])
        delta = state.clean.features[site][0, pos, index] - state.base.features[site][0, 0, index]
        groups[site] = (nodes, pos, index, delta)
    return groups


def per_target_loop(
    lens: Lens, state: PromptState, upstream: Sequence[Node], downstream: Sequence[Node]
) -> Callable[[], dict[tuple[Node, Node], float]]:
    """The baseline as a timed closure: one forward with leaves, one backward per target."""
    groups = upstream_groups(lens, state, upstream)
    sites = list(groups)

    def run() -> dict[tuple[Node, Node], float]:
        result = lens.forward(state.tokens, RunPlan(leaf_sites=sites, keep_graph=True))
        edges: dict[tuple[Node, Node], float] = {}
        for d in downstream:
            target = result.features[d.site][0, d.pos, d.index]
            earlier = [s for s in sites if lens.site_order(s) < lens.site_order(d.site)]
            leaves = [result.leaves[s] for s in earlier]
            grads = torch.autograd.grad(target, leaves, retain_graph=True)
            with torch.no_grad():
                for site, grad in zip(earlier, grads, strict=True):
                    nodes, pos, index, delta = groups[site]
                    w_dec = lens.dictionary(site).W_dec[index]  # [n, d_model]
                    scores = (grad[0, pos] * w_dec).sum(-1) * delta
                    edges.update(zip([(u, d) for u in nodes], scores.tolist(), strict=True))
        return edges

    return run


def batched_vectorised(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    batch_size: int,
) -> Callable[[], dict[tuple[Node, Node], float]]:
    """gradient_edges's batched backward, with each site's scores for all rows of a batch as one
    product: what gradient_edges would cost if its scoring were vectorised (a projection)."""
    groups = upstream_groups(lens, state, upstream)
    sites = list(groups)

    def run() -> dict[tuple[Node, Node], float]:
        edges: dict[tuple[Node, Node], float] = {}
        for start in range(0, len(downstream), batch_size):
            chunk = downstream[start : start + batch_size]
            tokens = state.tokens.expand(len(chunk), -1)
            result = lens.forward(tokens, RunPlan(leaf_sites=sites, keep_graph=True))
            targets = [result.features[d.site][r, d.pos, d.index] for r, d in enumerate(chunk)]
            leaves = [result.leaves[s] for s in sites]
            grads = torch.autograd.grad(torch.stack(targets).sum(), leaves, allow_unused=True)
            with torch.no_grad():
                for site, grad in zip(sites, grads, strict=True):
                    if grad is None:
                        continue
                    nodes, pos, index, delta = groups[site]
                    w_dec = lens.dictionary(site).W_dec[index]  # [n, d_model]
                    scores = torch.einsum("rnd,nd->rn", grad[:, pos], w_dec) * delta  # [rows, n]
                    for r, d in enumerate(chunk):
                        if lens.site_order(site) < lens.site_order(d.site):
                            row = scores[r].tolist()
                            edges.update(zip([(u, d) for u in nodes], row, strict=True))
        return edges

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced size, runs in seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = QUICK if args.quick else FULL
    print(machine_line("bench_edges"))

    model = build_model(n_layers=size.n_layers, d_model=size.d_model)
    tokens = torch.randint(
        1, int(model.cfg.d_vocab), (1, size.n_pos), generator=torch.Generator().manual_seed(1)
    )
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(size.n_layers)]
    lens = Lens(model, build_saes(model, tokens, size.d_sae, sites))
    prompts = PromptSet(tokens)
    (state,) = prompt_states(lens, prompts, "zero")
    features = [n for n in candidate_nodes(lens, state, "keep") if n.kind == "feature"]
    downstream = spread([n for n in features if n.site == sites[-1]], size.n_downstream)
    upstream = spread([n for n in features if n.site != sites[-1]], size.n_upstream)
    print(
        f"\n== random model: {size.n_layers} layers, d_model {size.d_model}, d_sae {size.d_sae} "
        f"at every hook_resid_post, {size.n_pos} tokens; {len(downstream)} downstream nodes at "
        f"{sites[-1]}, {len(upstream)} upstream nodes at the earlier sites; best of {size.repeats}"
    )

    t_loop, loop = best_of(per_target_loop(lens, state, upstream, downstream), size.repeats)
    t_ours, ours = best_of(
        lambda: gradient_edges(lens, state, upstream, downstream, batch_size=size.batch_size),
        size.repeats,
    )
    t_vec, vec = best_of(
        batched_vectorised(lens, state, upstream, downstream, size.batch_size), size.repeats
    )
    pairs = list(loop)
    largest = max(abs(v) for v in loop.values())
    diff = max(abs(ours[p] - loop[p]) for p in pairs)
    diff_vec = max(abs(vec[p] - loop[p]) for p in pairs)
    tol = 1e-4 * max(1.0, largest)
    ok = set(ours) == set(loop) == set(vec) and diff <= tol and diff_vec <= tol
    b = size.batch_size
    print(f"   one backward per downstream node (hand)       {t_loop:8.3f} s")
    print(f"   ours: gradient_edges, batch_size={b:<4}          {t_ours:8.3f} s")
    print(f"   batched backward + vectorised scores (hand)   {t_vec:8.3f} s")
    verdict = "meets" if t_loop / t_ours >= 5 else "MISSES"
    print(f"   speed-up of ours: {t_loop / t_ours:.1f}x  ({verdict} the target >= 5x)")
    print(f"   speed-up of batched + vectorised scores: {t_loop / t_vec:.1f}x")
    print(
        f"   {len(pairs)} edges, max |diff| vs the loop: ours {diff:.2e}, "
        f"batched by hand {diff_vec:.2e} (max |edge| {largest:.3g})"
    )
    if not ok:
        print("FAILED: batched edges disagree with the per-target loop")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
