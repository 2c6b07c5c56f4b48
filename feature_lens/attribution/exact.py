"""Activation patching (exact).

For each node n: set n to its baseline b_n at its site — the site's other features and its error
term keep their clean values — recompute everything downstream (later dictionaries' features and
errors are recomputed from the patched stream), and measure
    effect(n) = metric(clean) - metric(patched).
For an edge u -> d the downstream feature d's activation takes the metric's place:
    edge(u, d) = a_d(clean) - a_d(u patched).
Interventions are batched: each row of a forward pass carries one patch (an additive change to one
site's output), `batch_size` rows per pass, so memory stays bounded and the cost is one forward
per `batch_size` interventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float

from feature_lens.attribution.gradients import edge_mask, edges_from_matrix
from feature_lens.attribution.metrics import Metric, at_one_position, evaluate, metric_sites
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState, batched_patch_edits, chunks
from feature_lens.lens import Lens, RunPlan


def exact_node_effects(
    lens: Lens, state: PromptState, metric: Metric, nodes: Sequence[Node], *, batch_size: int = 64
) -> dict[Node, float]:
    """metric(clean) - metric(node patched to baseline), for each node, batched. A metric that
    reads one position's logits (`at_one_position`) gets logits computed there alone."""
    narrow = at_one_position(metric, int(state.tokens.shape[-1]))
    positions = None if narrow is None else [narrow[1]]
    reader = metric if narrow is None else narrow[0]
    with torch.no_grad():
        clean_run = lens.forward(state.tokens, RunPlan(logit_positions=positions))
        clean = evaluate(reader, clean_run, state.answers)[0]
        effects: dict[Node, float] = {}
        for chunk in chunks(nodes, batch_size):
            rows = len(chunk)
            tokens = state.tokens.expand(rows, -1)
            answers = None if state.answers is None else state.answers.expand(rows, -1)
            # Straight-through splices are the identity: only sites the metric reads are encoded.
            plan = RunPlan(
                edits=batched_patch_edits(lens, state, chunk),
                encode_sites=metric_sites(metric),
                logit_positions=positions,
            )
            patched = evaluate(reader, lens.forward(tokens, plan), answers)
            effects.update({node: float(clean - patched[r]) for r, node in enumerate(chunk)})
    return effects


def exact_edge_matrix(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    targets: Sequence[Node],
    *,
    batch_size: int = 64,
) -> Float[torch.Tensor, "upstream targets"]:
    """a_d(clean) - a_d(u patched), `[len(upstream), len(targets)]` (targets: feature nodes), for
    u at an earlier site than d; zero elsewhere (see `edge_mask`). One patched forward per chunk
    of `batch_size` upstream nodes (a row each), stopping after the last target's block."""
    dtype = state.clean.embeddings.dtype
    out = torch.zeros(len(upstream), len(targets), dtype=dtype, device=state.tokens.device)
    if not upstream or not targets:
        return out
    with torch.no_grad():
        target_sites = sorted({d.site for d in targets})
        stop = lens.stop_layer(target_sites)
        plan = RunPlan(encode_sites=target_sites, stop_at_layer=stop)
        clean = _target_values(lens.forward(state.tokens, plan).features, targets)
        for start in range(0, len(upstream), batch_size):
            chunk = upstream[start : start + batch_size]
            tokens = state.tokens.expand(len(chunk), -1)
            plan = RunPlan(
                edits=batched_patch_edits(lens, state, chunk),
                encode_sites=target_sites,
                stop_at_layer=stop,
            )
            patched = _target_values(lens.forward(tokens, plan).features, targets)
            out[start : start + len(chunk)] = (clean - patched).to(dtype)  # [rows, targets]
    return out * edge_mask(lens, upstream, targets).to(out.device)


def exact_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    *,
    batch_size: int = 64,
) -> dict[tuple[Node, Node], float]:
    """`exact_edge_matrix` as `{(u, d): weight}` for every u at an earlier site than feature
    node d (a convenience view for tests and small graphs)."""
    upstream = list(upstream)
    targets = [d for d in downstream if d.kind == "feature"]
    matrix = exact_edge_matrix(lens, state, upstream, targets, batch_size=batch_size)
    return edges_from_matrix(matrix, upstream, targets, edge_mask(lens, upstream, targets))


def _target_values(
    features: dict[str, torch.Tensor], targets: Sequence[Node]
) -> Float[torch.Tensor, "batch targets"]:
    """`[batch, targets]`: each target feature's activation (summed over positions if pos None)."""
    columns: list[torch.Tensor] = []
    for d in targets:
        acts = features[d.site][..., d.index]
        columns.append(acts.sum(-1) if d.pos is None else acts[:, d.pos])
    return torch.stack(columns, dim=1)
