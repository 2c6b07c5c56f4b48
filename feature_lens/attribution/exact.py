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

from feature_lens.attribution.metrics import Metric, evaluate, metric_sites
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState, batched_patch_edits, chunks
from feature_lens.lens import Lens, RunPlan


def exact_node_effects(
    lens: Lens, state: PromptState, metric: Metric, nodes: Sequence[Node], *, batch_size: int = 64
) -> dict[Node, float]:
    """metric(clean) - metric(node patched to baseline), for each node, batched."""
    with torch.no_grad():
        clean = evaluate(metric, lens.forward(state.tokens, RunPlan()), state.answers)[0]
        effects: dict[Node, float] = {}
        for chunk in chunks(nodes, batch_size):
            rows = len(chunk)
            tokens = state.tokens.expand(rows, -1)
            answers = None if state.answers is None else state.answers.expand(rows, -1)
            # Straight-through splices are the identity: only sites the metric reads are encoded.
            plan = RunPlan(
                edits=batched_patch_edits(lens, state, chunk), encode_sites=metric_sites(metric)
            )
            patched = evaluate(metric, lens.forward(tokens, plan), answers)
            effects.update({node: float(clean - patched[r]) for r, node in enumerate(chunk)})
    return effects


def exact_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    *,
    batch_size: int = 64,
) -> dict[tuple[Node, Node], float]:
    """a_d(clean) - a_d(u patched) for upstream nodes u at earlier sites than feature nodes d."""
    targets = [d for d in downstream if d.kind == "feature"]
    if not targets:
        return {}
    edges: dict[tuple[Node, Node], float] = {}
    with torch.no_grad():
        target_sites = {d.site for d in targets}
        last = max(lens.site_layer(site) for site in target_sites)
        stop = last + 1 if 0 <= last < int(lens.model.cfg.n_layers) else None
        clean = _target_values(
            lens.forward(
                state.tokens, RunPlan(encode_sites=target_sites, stop_at_layer=stop)
            ).features,
            targets,
        )
        for chunk in chunks(upstream, batch_size):
            tokens = state.tokens.expand(len(chunk), -1)
            plan = RunPlan(
                edits=batched_patch_edits(lens, state, chunk),
                encode_sites=target_sites,
                stop_at_layer=stop,
            )
            result = lens.forward(tokens, plan)
            patched = _target_values(result.features, targets)  # [rows, targets]
            for r, u in enumerate(chunk):
                for t, d in enumerate(targets):
                    if lens.site_order(u.site) < lens.site_order(d.site):
                        edges[(u, d)] = float(clean[0, t] - patched[r, t])
    return edges


def _target_values(
    features: dict[str, torch.Tensor], targets: Sequence[Node]
) -> Float[torch.Tensor, "batch targets"]:
    """`[batch, targets]`: each target feature's activation (summed over positions if pos None)."""
    columns = []
    for d in targets:
        acts = features[d.site][..., d.index]
        columns.append(acts.sum(-1) if d.pos is None else acts[:, d.pos])
    return torch.stack(columns, dim=1)
