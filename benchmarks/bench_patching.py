"""Benchmark: batched exact patching vs one forward pass per intervention.

`exact_node_effects` puts one patch in each row of a batch, `batch_size` rows per forward pass. This
script times it against baselines, all in one run:

- "ours, batch_size=1": the same code path with one row per pass;
- "hand loop": plain `model.run_with_hooks` per node, with no dictionaries spliced in and a hook
  that adds the patch `-(a_i - b_i) * W_dec[i]` at the node's site and position. Because the
  spliced model computes exactly what the model computes, this is the same intervention, and it is
  cheaper per pass than ours (no dictionary is evaluated), so the ratio against it is conservative.
  Its feature values come from `sae.encode` on `run_with_cache`, independently of feature-lens.
- "plain model, batched by hand": the same plain model and hooks with `batch_size` patches per
  forward (row r adds patch r): what batching gives with no dictionary spliced in. The script
  prints ours / this (the cost of running through the Lens at equal batching), timed in the same
  run.

The patched metric (logit difference at the last position) must agree across the three; the script
exits non-zero if it does not. Nodes are feature nodes at every site and position whose clean value
differs from the corrupted prompt's (`candidate_nodes`), spread evenly over that list.

Run: `python benchmarks/bench_patching.py [--quick]`. With the embedded zoo model available
(`feature_lens.zoo`), the same comparison runs on it and an IOI prompt pair too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from common import best_of, build_model, build_saes, load_line, machine_line
from torch import Tensor

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    candidate_nodes,
    exact_node_effects,
    prompt_states,
)


@dataclass(frozen=True)
class Size:
    """Shape of the random model and of the benchmark."""

    n_layers: int
    d_model: int
    d_sae: int
    n_pos: int
    n_nodes: int
    batch_size: int
    repeats: int


FULL = Size(n_layers=4, d_model=128, d_sae=1024, n_pos=16, n_nodes=512, batch_size=128, repeats=3)
QUICK = Size(n_layers=2, d_model=64, d_sae=256, n_pos=8, n_nodes=256, batch_size=128, repeats=2)


def hand_patches(
    lens: Lens, clean: Tensor, corrupted: Tensor, nodes: Sequence[Node]
) -> list[tuple[str, int, Tensor]]:
    """(hook, position, vector) per node: the node's patch `-(a_i - b_i) * W_dec[i]`, with feature
    values from `sae.encode` on the plain model's cache (independently of feature-lens)."""
    model = lens.model
    hooks_in = {d.hook_in for d in lens.dictionaries.values()}
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean, names_filter=lambda n: n in hooks_in)
        _, base_cache = model.run_with_cache(corrupted, names_filter=lambda n: n in hooks_in)
        features = {
            site: (d.sae.encode(clean_cache[d.hook_in])[0], d.sae.encode(base_cache[d.hook_in])[0])
            for site, d in lens.dictionaries.items()
        }
    patches = []
    for node in nodes:
        assert node.pos is not None
        assert node.index is not None
        a, b = features[node.site]
        dictionary = lens.dictionaries[node.site]
        delta = a[node.pos, node.index] - b[node.pos, node.index]
        patches.append((dictionary.hook_out, node.pos, -delta * dictionary.W_dec[node.index]))
    return patches


def hand_loop(
    lens: Lens,
    clean: Tensor,
    corrupted: Tensor,
    nodes: Sequence[Node],
    correct: int,
    wrong: int,
    batch_size: int = 1,
) -> Callable[[], dict[Node, float]]:
    """Plain `run_with_hooks` with no dictionaries spliced in, `batch_size` patches per pass (row r
    adds patch r at its hook and position); returns a timed closure. With `batch_size=1` it is
    the baseline; larger, it shows what batching costs without evaluating any dictionary."""
    model = lens.model
    patches = hand_patches(lens, clean, corrupted, nodes)

    def metric(logits: Tensor) -> Tensor:
        return logits[:, -1, correct] - logits[:, -1, wrong]

    def run() -> dict[Node, float]:
        effects: dict[Node, float] = {}
        with torch.no_grad():
            clean_metric = float(metric(model(clean))[0])
            for start in range(0, len(nodes), batch_size):
                chunk = patches[start : start + batch_size]
                adds: dict[str, Tensor] = {}
                for row, (hook, pos, vector) in enumerate(chunk):
                    adds.setdefault(
                        hook, torch.zeros(len(chunk), *clean.shape[1:], vector.shape[0])
                    )
                    adds[hook][row, pos] += vector

                def add_patch(act: Tensor, hook: Any, adds: dict[str, Tensor] = adds) -> Tensor:
                    return act + adds[hook.name]

                tokens = clean.expand(len(chunk), -1)
                logits = model.run_with_hooks(tokens, fwd_hooks=[(h, add_patch) for h in adds])
                values = (clean_metric - metric(logits)).tolist()
                effects.update(zip(nodes[start : start + batch_size], values, strict=True))
        return effects

    return run


def compare(
    name: str,
    lens: Lens,
    clean: Tensor,
    corrupted: Tensor,
    correct: int,
    wrong: int,
    n_nodes: int,
    batch_size: int,
    repeats: int,
) -> bool:
    """Time ours (batched and batch_size=1) against the hand loop; print; True if they agree."""
    (state,) = prompt_states(lens, PromptSet(clean, corrupted), "corrupted")
    features = [n for n in candidate_nodes(lens, state, "keep") if n.kind == "feature"]
    step = max(1, len(features) // n_nodes)
    nodes = features[::step][:n_nodes]
    metric = LogitDiff(correct, wrong)
    print(
        f"\n== {name}: {len(lens.sites)} sites, d_sae {lens.dictionary(lens.sites[0]).d_sae}, "
        f"{clean.shape[1]} tokens, {len(nodes)} interventions "
        f"(of {len(features)} candidate feature nodes), best of {repeats}"
    )
    if len(nodes) < 256:
        print(f"   note: fewer than 256 candidate nodes ({len(nodes)})")
    t_batched, batched = best_of(
        lambda: exact_node_effects(lens, state, metric, nodes, batch_size=batch_size), repeats
    )
    t_single, single = best_of(
        lambda: exact_node_effects(lens, state, metric, nodes, batch_size=1), repeats
    )
    t_hand, hand = best_of(hand_loop(lens, clean, corrupted, nodes, correct, wrong), repeats)
    t_plain, plain = best_of(
        hand_loop(lens, clean, corrupted, nodes, correct, wrong, batch_size), repeats
    )

    largest = max(abs(v) for v in hand.values())
    scale = max(1.0, largest)
    diff_single = max(abs(batched[n] - single[n]) for n in nodes)
    diff_hand = max(max(abs(batched[n] - hand[n]), abs(plain[n] - hand[n])) for n in nodes)
    rows = [
        ("hand loop: run_with_hooks per node", t_hand),
        ("ours, batch_size=1", t_single),
        (f"ours, batch_size={batch_size}", t_batched),
        (f"plain model, batched by hand, {batch_size}", t_plain),
    ]
    for label, seconds in rows:
        print(f"   {label:<38} {seconds:8.3f} s   {1e3 * seconds / len(nodes):7.3f} ms/node")
    print(f"   speed-up vs hand loop:       {t_hand / t_batched:6.1f}x  (target >= 10x)")
    print(f"   speed-up vs batch_size=1:    {t_single / t_batched:6.1f}x  (target >= 10x)")
    print(
        f"   plain model batched by hand vs hand loop: {t_hand / t_plain:.1f}x (no dictionary "
        "evaluated: what ours could reach if it skipped dictionaries the metric does not read)"
    )
    print(
        f"   ours batched / plain model batched by hand: {t_batched / t_plain:.2f}x the time "
        "(same interventions, same batch size, same run)"
    )
    print(f"   max |diff| batched - batch_size=1: {diff_single:.2e}")
    print(f"   max |diff| vs the hand loop:       {diff_hand:.2e}  (max |effect| {largest:.3g})")
    ok = diff_single <= 1e-4 * scale and diff_hand <= 1e-4 * scale
    if not ok:
        print(f"   DISAGREEMENT on {name}: the three computations differ beyond 1e-4 relative")
    return ok


def random_case(size: Size) -> bool:
    """The comparison on a random model with random SAEs at every residual stream."""
    model = build_model(n_layers=size.n_layers, d_model=size.d_model)
    generator = torch.Generator().manual_seed(1)
    d_vocab = int(model.cfg.d_vocab)
    clean = torch.randint(1, d_vocab, (1, size.n_pos), generator=generator)
    corrupted = clean.clone()
    corrupted[0, size.n_pos // 2 :] = torch.randint(
        1, d_vocab, (size.n_pos - size.n_pos // 2,), generator=generator
    )
    sites = [f"blocks.{layer}.hook_resid_post" for layer in range(size.n_layers)]
    lens = Lens(model, build_saes(model, torch.cat([clean, corrupted]), size.d_sae, sites))
    with torch.no_grad():
        top = model(clean)[0, -1].topk(2).indices.tolist()
    return compare(
        "random model",
        lens,
        clean,
        corrupted,
        top[0],
        top[1],
        size.n_nodes,
        size.batch_size,
        size.repeats,
    )


def zoo_case(size: Size) -> bool:
    """The comparison on the embedded zoo model with an IOI pair, if the zoo is available."""
    try:
        from feature_lens.zoo import task_prompts

        lens = Lens.load()
        pairs = task_prompts("ioi", 1)
    except Exception as exc:  # the zoo is optional; say why it was skipped
        print(f"\n== zoo model: skipped ({type(exc).__name__}: {exc})")
        return True
    return compare(
        "zoo model, ioi",
        lens,
        pairs.clean[:1].to(lens.device),
        pairs.corrupted[:1].to(lens.device),
        int(pairs.correct[0]),
        int(pairs.wrong[0]),
        size.n_nodes,
        size.batch_size,
        size.repeats,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced size, runs in seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--no-zoo", action="store_true", help="skip the embedded zoo model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = QUICK if args.quick else FULL
    print(machine_line("bench_patching"))
    print(load_line("start"))
    ok = random_case(size)
    if not args.no_zoo:
        ok = zoo_case(size) and ok
    print(load_line("end"))
    if not ok:
        print("FAILED: patched metrics disagree (see above)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
