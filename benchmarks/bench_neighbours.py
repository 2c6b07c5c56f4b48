"""Benchmark: the dashboards' neighbour step (`dashboard.neighbours.neighbours`) on the engine, against
the hand-written code it replaced, on the same model, SAE, prompts and features, in one run.

    python benchmarks/bench_neighbours.py [--features 16] [--prompts 200] [--repeats 5] [--quick]

The embedded model (the zoo) with all its SAEs, the first `--features` features of its last SAE
(so every other site is upstream of them) over `--prompts` corpus prompts, 4 top prompts each. Both methods of
the upstream panel are timed ("attribution": attribution patching; "direct": direct attribution),
each with the downstream panel (exact ablation), as the dashboards run them (batches of 32 rows).

The baseline is the pre-engine neighbour code (git history of feature_lens/dashboard/neighbours.py
before "Dashboards call the engine", commit f6940f5), reconstructed here and only here: one forward
and one backward over a padded batch of rows for the upstream weights (leaves at every site, dense
over d_sae), one clean and one patched forward for the downstream ones. The script checks that the
two give the same weights (to 1e-4) before it prints the ratio (target: engine / baseline <= 1).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Before torch is imported (see common.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
from common import best_of, machine_line
from torch import Tensor

from feature_lens import Lens
from feature_lens.attribution.direct import clean_freeze
from feature_lens.dashboard import prepare_dataset
from feature_lens.dashboard.data import Dataset, feature_activations
from feature_lens.dashboard.neighbours import (
    _links,  # pyright: ignore[reportPrivateUsage]
    _mean,  # pyright: ignore[reportPrivateUsage]
    _rows,  # pyright: ignore[reportPrivateUsage]
    downstream_scores,
    neighbours,
    top_prompts,
    upstream_scores,
)
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import EMBED_SITE, RunPlan, SiteEdit
from feature_lens.zoo import corpus_tokens

Row = tuple[Node, int]


# ------------------------------------------------------------------ the baseline (pre-engine code)
def old_upstream(
    lens: Lens, dataset: Dataset, rows: Sequence[Row], method: str
) -> list[dict[str, Tensor]]:
    """Pre-engine upstream weights: one forward + one backward over the padded batch of rows."""
    tokens = dataset.tokens[[p for _, p in rows]].to(lens.device)
    mask = dataset.mask[[p for _, p in rows]].to(lens.device)
    target_sites = sorted({f.site for f, _ in rows})
    stop = lens.stop_layer(target_sites)
    sites = [s for s in lens.sites if stop is None or lens.site_layer(s) < stop] + [EMBED_SITE]
    freeze = clean_freeze(lens, tokens) if method == "direct" else None
    gates: dict[str, Tensor] = {}
    if freeze is not None:
        with torch.no_grad():
            clean = lens.forward(tokens, RunPlan(record_pre=target_sites, stop_at_layer=stop))
        for site in target_sites:
            post, pre = clean.features[site], clean.pre_acts[site]
            gates[site] = torch.where(pre != 0, post / torch.where(pre != 0, pre, 1), 0)
    plan = RunPlan(
        leaf_sites=sites,
        keep_graph=True,
        freeze=freeze,
        record_pre=target_sites if freeze is not None else (),
        gradient_mode="straight_through" if freeze is not None else None,
        stop_at_layer=stop,
    )
    result = lens.forward(tokens, plan)
    values: list[Tensor] = []
    for r, (f, _) in enumerate(rows):
        if freeze is not None:
            act = result.pre_acts[f.site][r, :, f.index] * gates[f.site][r, :, f.index]
        else:
            act = result.features[f.site][r, :, f.index]
        values.append((act * mask[r]).sum())
    grads = torch.autograd.grad(
        torch.stack(values).sum(), [result.leaves[s] for s in sites], allow_unused=True
    )
    out: list[dict[str, Tensor]] = [{} for _ in rows]
    with torch.no_grad():
        for site, grad in zip(sites, grads, strict=True):
            if grad is None:
                continue
            if site == EMBED_SITE:
                assert result.embeddings is not None
                emb = (grad * result.embeddings.detach()).sum((1, 2))
                for r in range(len(rows)):
                    out[r][site] = emb[r : r + 1].cpu()
                continue
            acts = result.features[site].detach()
            feats = (torch.einsum("bpd,fd->bpf", grad, lens.dictionary(site).W_dec) * acts).sum(1)
            err = (grad * result.errors[site].detach()).sum((1, 2))
            order = lens.site_order(site)
            for r, (f, _) in enumerate(rows):
                if order < lens.site_order(f.site):
                    out[r][site] = torch.cat([feats[r], err[r : r + 1]]).cpu()
    return out


def old_downstream(lens: Lens, dataset: Dataset, rows: Sequence[Row]) -> list[dict[str, Tensor]]:
    """Pre-engine downstream weights: one clean forward per distinct prompt, one patched forward."""
    first = min(lens.site_order(f.site) for f, _ in rows)
    later = [s for s in lens.sites if lens.site_order(s) > first]
    own = sorted({f.site for f, _ in rows})
    prompts = sorted({p for _, p in rows})
    where = {p: i for i, p in enumerate(prompts)}
    tokens = dataset.tokens[[p for _, p in rows]].to(lens.device)
    mask = dataset.mask[[p for _, p in rows]].to(lens.device)
    with torch.no_grad():
        clean = lens.forward(
            dataset.tokens[prompts].to(lens.device), RunPlan(encode_sites=[*own, *later])
        )
        cm = dataset.mask[prompts].to(lens.device)[..., None].to(clean.logits.dtype)
        clean_logits = (clean.logits * cm).sum(1)
        clean_sums = {s: (clean.features[s] * cm).sum(1) for s in later}
        adds: dict[str, Tensor] = {}
        for r, (f, prompt) in enumerate(rows):
            W_dec = lens.dictionary(f.site).W_dec
            if f.site not in adds:
                adds[f.site] = torch.zeros(*tokens.shape, W_dec.shape[1], dtype=W_dec.dtype)
            act = clean.features[f.site][where[prompt], :, f.index]
            adds[f.site][r] -= act[:, None] * W_dec[f.index][None, :]
        patched = lens.forward(
            tokens, RunPlan(edits={s: SiteEdit(add=a) for s, a in adds.items()}, encode_sites=later)
        )
        index = torch.tensor([where[p] for _, p in rows])
        m = mask[..., None].to(clean.logits.dtype)
        logits = (clean_logits[index] - (patched.logits * m).sum(1)).cpu()
        change = {s: (clean_sums[s][index] - (patched.features[s] * m).sum(1)).cpu() for s in later}
    out: list[dict[str, Tensor]] = []
    for r, (f, _) in enumerate(rows):
        order = lens.site_order(f.site)
        row = {s: c[r] for s, c in change.items() if lens.site_order(s) > order}
        row["logits"] = logits[r]
        out.append(row)
    return out


def old_neighbours(
    lens: Lens, dataset: Dataset, acts: dict[Node, Tensor], method: str, batch_size: int = 32
) -> int:
    """The pre-engine `neighbours` loop (same batching and link selection as today's)."""
    prompts = {f: top_prompts(a, 4) for f, a in acts.items()}
    rows = _rows(prompts)
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    up: list[dict[str, Tensor]] = [{} for _ in rows]
    down: list[dict[str, Tensor]] = [{} for _ in rows]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = [rows[i] for i in chunk]
        pairs = zip(
            old_upstream(lens, dataset, batch, method),
            old_downstream(lens, dataset, batch),
            strict=True,
        )
        for i, (u, d) in zip(chunk, pairs, strict=True):
            up[i], down[i] = u, d
    cursor = 0
    for ps in prompts.values():
        n = len(ps)
        _links(_mean(up[cursor : cursor + n]), _mean(down[cursor : cursor + n]), method, 12, None)
        cursor += n
    return cursor


def check_equal(lens: Lens, dataset: Dataset, rows: Sequence[Row], method: str) -> float:
    """Largest |engine - baseline| over every upstream and downstream weight of `rows`."""
    worst = 0.0
    pairs = [
        (upstream_scores(lens, dataset, rows, method), old_upstream(lens, dataset, rows, method)),  # type: ignore[arg-type]
        (downstream_scores(lens, dataset, rows), old_downstream(lens, dataset, rows)),
    ]
    for new, old in pairs:
        for a, b in zip(new, old, strict=True):
            assert a.keys() == b.keys(), (a.keys(), b.keys())
            for key in a:
                diff = float((a[key] - b[key]).abs().max())
                scale = max(1.0, float(b[key].abs().max()))
                assert diff <= 1e-4 * scale, (method, key, diff)
                worst = max(worst, diff)
    return worst


def main() -> None:
    """Time both versions of the neighbour step and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="8 features, 60 prompts, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.features, args.prompts, args.repeats = 8, 60, 1
    torch.set_num_threads(args.threads)
    lens = Lens.load()
    hook = lens.sites[-1]
    dataset = prepare_dataset(lens, corpus_tokens(args.prompts, n_ctx=int(lens.model.cfg.n_ctx)))
    features = [feature_node(hook, i) for i in range(args.features)]
    acts = feature_activations(lens, dataset, features)
    rows = _rows({f: top_prompts(a, 4) for f, a in acts.items()})
    lengths = sorted({int(dataset.lengths[p]) for _, p in rows})
    print(machine_line("bench_neighbours"))
    print(
        f"zoo, {len(lens.sites)} SAEs; features of {hook} (d_sae {lens.dictionary(hook).d_sae}); {len(features)} features x 4 top prompts = "
        f"{len(rows)} rows over {len({p for _, p in rows})} prompts of {len(lengths)} lengths "
        f"({lengths[0]}-{lengths[-1]} tokens); best of {args.repeats}, interleaved"
    )
    for method in ("attribution", "direct"):
        worst = check_equal(lens, dataset, rows[:32], method)
        # Interleaved, so that a change in the machine's load hits both sides alike.
        engine = baseline = float("inf")
        for _ in range(args.repeats):
            seconds, _ = best_of(
                lambda m=method: neighbours(  # type: ignore[misc]
                    lens, dataset, {f: top_prompts(a, 4) for f, a in acts.items()}, method=m
                ),
                1,
            )
            engine = min(engine, seconds)
            seconds, _ = best_of(lambda m=method: old_neighbours(lens, dataset, acts, m), 1)
            baseline = min(baseline, seconds)
        print(
            f"{method:>11}: engine {engine:6.3f} s, pre-engine code {baseline:6.3f} s, "
            f"ratio engine/baseline {engine / baseline:5.2f} (target <= 1); "
            f"weights equal to {worst:.1e}"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
