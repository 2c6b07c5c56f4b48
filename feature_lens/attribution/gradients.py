"""Total attribution patching and integrated gradients (Marks et al. 2024, Sparse Feature Circuits).

**Attribution patching** replaces each exact patch by its first-order estimate through all paths:
    effect(n) ~= d metric / d a_n . (a_n - b_n)
One forward and one backward give every node's score. Zero "leaf" tensors are added to each site's
output; the gradient w.r.t. a site's output `g` gives a feature's gradient as `W_dec[i] . g` (the
error term's gradient is `g` itself), so no tensor of width d_sae is kept in the autograd graph.
How gradients cross the *other* sites' splices is the Lens's gradient mode: straight-through by
default (the error term is recomputed from the activation, so the splice is the identity and the
gradient is the model's own, as in Marks et al.), or detached (SAE-Lens's splice: the error term is a
constant and gradients pass through the SAE's encoder).

**Integrated gradients** average the gradient along the straight line from the baseline to the clean
values. As in Marks et al., all nodes of one site (features and error) move together, the other
sites keep their clean values upstream and are recomputed downstream; `steps` points at the
midpoints of equal intervals, one batch row each. The scores of one site then sum to the effect of
patching the whole site (up to the quadrature error, which vanishes as `steps` grows).

**Edges** u -> d (d a feature) use d's activation as the metric. They come from batched backward
passes: the prompt is repeated along the batch, row r's target is downstream node r, and one
backward of the sum gives, in row r, the gradients of target r w.r.t. every upstream site.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor

from feature_lens.attribution.metrics import Metric, evaluate, metric_sites, needs_features
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import (
    PromptState,
    gradient_score_matrix,
    node_gradient_scores,
)
from feature_lens.lens import EMBED_SITE, Freeze, Lens, RunPlan, SiteEdit


def gradient_node_effects(
    lens: Lens,
    state: PromptState,
    metric: Metric,
    nodes: Sequence[Node],
    *,
    freeze: Freeze | None = None,
) -> dict[Node, float]:
    """grad . (a - b) for each node, from one forward and one backward (`freeze`: direct mode)."""
    sites = [*lens.sites, EMBED_SITE]
    straight = freeze is not None or lens.gradient_mode == "straight_through"
    plan = RunPlan(
        leaf_sites=sites,
        keep_graph=needs_features(metric),
        freeze=freeze,
        gradient_mode="straight_through" if freeze is not None else None,
        encode_sites=metric_sites(metric) if straight else None,
    )
    result = lens.forward(state.tokens, plan)
    value = evaluate(metric, result, state.answers).sum()
    grad_map = _site_gradients(value, result.leaves, sites)
    return node_gradient_scores(lens, state, grad_map, nodes)


def integrated_gradient_node_effects(
    lens: Lens, state: PromptState, metric: Metric, nodes: Sequence[Node], *, steps: int = 16
) -> dict[Node, float]:
    """Integrated gradients along baseline -> clean, one site at a time (see the module doc)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    alphas = (
        torch.arange(steps, dtype=state.clean.embeddings.dtype, device=state.tokens.device) + 0.5
    ) / steps
    tokens = state.tokens.expand(steps, -1)
    answers = None if state.answers is None else state.answers.expand(steps, -1)
    mean_grads: dict[str, Tensor] = {}
    for site in {EMBED_SITE if n.kind == "token" else n.site for n in nodes}:
        plan = RunPlan(
            leaf_sites=[site],
            keep_graph=needs_features(metric),
            edits={site: _interpolate(state, site, alphas)},
        )
        result = lens.forward(tokens, plan)
        value = evaluate(metric, result, answers).sum()
        # A site after a NodeActivation target does not reach it: its gradient is zero.
        leaf = result.leaves[site]
        reached = value.requires_grad
        grad = _site_gradients(value, result.leaves, [site])[site] if reached else leaf * 0
        mean_grads[site] = grad.mean(0, keepdim=True)
    return node_gradient_scores(lens, state, mean_grads, nodes)


def _interpolate(state: PromptState, site: str, alphas: Tensor) -> SiteEdit:
    """Edit putting the site's nodes at b + alpha (a - b), alpha varying along the batch."""
    alpha = alphas[:, None, None]
    if site == EMBED_SITE:
        delta = state.clean.embeddings - state.base.embeddings
        return SiteEdit(add=(alpha - 1) * delta)
    base_f, base_e = state.base.features[site], state.base.errors[site]
    return SiteEdit(
        features=lambda f: base_f + alpha * (f - base_f),
        error=lambda e: base_e + alpha * (e - base_e),
    )


def gradient_edge_matrix(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    targets: Sequence[Node],
    *,
    batch_size: int = 64,
    freeze: Freeze | None = None,
) -> Tensor:
    """First-order edges as a matrix `[len(upstream), len(targets)]` (targets: feature nodes):
    d a_d / d a_u . (a_u - b_u) through all paths, by batched backward passes; zero where u fires
    at or after d (see `edge_mask`).

    With `freeze` (direct attribution), the target is d's pre-activation times its frozen gate
    (post/pre on the clean run) in the frozen model, and the result is exact.
    """
    sites = [*lens.sites, EMBED_SITE]
    dtype = state.clean.embeddings.dtype
    out = torch.zeros(len(upstream), len(targets), dtype=dtype, device=state.tokens.device)
    if not upstream or not targets:
        return out
    gates = (
        gate_values(lens, state, sorted({d.site for d in targets})) if freeze is not None else {}
    )
    straight = freeze is not None or lens.gradient_mode == "straight_through"
    for start in range(0, len(targets), batch_size):
        chunk = targets[start : start + batch_size]
        rows = len(chunk)
        chunk_sites = {d.site for d in chunk}
        last = max(lens.site_layer(site) for site in chunk_sites)
        plan = RunPlan(
            leaf_sites=sites,
            keep_graph=True,
            freeze=freeze,
            record_pre=sorted(chunk_sites) if freeze is not None else (),
            gradient_mode="straight_through" if freeze is not None else None,
            encode_sites=chunk_sites if straight else None,
            # Targets are features: nothing after the last target's block matters.
            stop_at_layer=last + 1 if 0 <= last < int(lens.model.cfg.n_layers) else None,
        )
        result = lens.forward(state.tokens.expand(rows, -1), plan)
        values = torch.stack([_target(result, d, r, gates) for r, d in enumerate(chunk)])
        grad_map = _site_gradients(values.sum(), result.leaves, sites)
        out[:, start : start + rows] = gradient_score_matrix(lens, state, grad_map, upstream).T
    return out * edge_mask(lens, upstream, targets).to(out.device)


def edge_mask(lens: Lens, upstream: Sequence[Node], targets: Sequence[Node]) -> Tensor:
    """`[len(upstream), len(targets)]` booleans: u's site fires before d's (an edge can exist)."""
    sites = {EMBED_SITE, *(d.site for d in targets)}
    sites |= {EMBED_SITE if u.kind == "token" else u.site for u in upstream}
    order = {site: lens.site_order(site) for site in sites}
    up = torch.tensor([order[EMBED_SITE if u.kind == "token" else u.site] for u in upstream])
    down = torch.tensor([order[d.site] for d in targets])
    return up[:, None] < down[None, :]


def edges_from_matrix(
    matrix: Tensor, upstream: Sequence[Node], targets: Sequence[Node], mask: Tensor
) -> dict[tuple[Node, Node], float]:
    """The `{(u, d): weight}` view of an edge matrix, for the pairs `mask` allows."""
    values = matrix.tolist()
    allowed = mask.tolist()
    return {
        (u, d): values[i][j]
        for i, u in enumerate(upstream)
        for j, d in enumerate(targets)
        if allowed[i][j]
    }


def gradient_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    *,
    batch_size: int = 64,
    freeze: Freeze | None = None,
) -> dict[tuple[Node, Node], float]:
    """`gradient_edge_matrix` as `{(u, d): weight}` for every u firing before feature node d."""
    upstream = list(upstream)
    targets = [d for d in downstream if d.kind == "feature"]
    matrix = gradient_edge_matrix(
        lens, state, upstream, targets, batch_size=batch_size, freeze=freeze
    )
    return edges_from_matrix(matrix, upstream, targets, edge_mask(lens, upstream, targets))


def _site_gradients(
    value: Tensor, leaves: dict[str, Tensor], sites: Sequence[str]
) -> dict[str, Tensor]:
    """Gradient of `value` w.r.t. each site's leaf; zeros for sites it does not depend on. Sites
    with no leaf (after a run's `stop_at_layer`) are left out: they cannot affect `value`."""
    present = [s for s in sites if s in leaves]
    grads = cast(
        "tuple[Tensor | None, ...]",
        torch.autograd.grad(value, [leaves[s] for s in present], allow_unused=True),
    )
    return {
        s: torch.zeros_like(leaves[s]) if g is None else g
        for s, g in zip(present, grads, strict=True)
    }


def gate_values(lens: Lens, state: PromptState, sites: Sequence[str]) -> dict[str, Tensor]:
    """post / pre on the clean run, per site (`[pos, d_sae]`): the frozen activation function.
    Computed once per prompt state (one forward for the missing sites) and cached on it."""
    missing = [site for site in sites if site not in state.gates]
    if missing:
        with torch.no_grad():
            result = lens.forward(state.tokens, RunPlan(record_pre=missing, encode_sites=missing))
        for site in missing:
            post, pre = result.features[site][0], result.pre_acts[site][0]
            state.gates[site] = torch.where(pre != 0, post / torch.where(pre != 0, pre, 1), 0)
    return {site: state.gates[site] for site in sites}


def _target(result: object, node: Node, row: int, gates: dict[str, Tensor]) -> Tensor:
    from feature_lens.lens import RunResult

    assert isinstance(result, RunResult)
    if gates:
        acts = result.pre_acts[node.site][row, :, node.index] * gates[node.site][:, node.index]
    else:
        acts = result.features[node.site][row, :, node.index]
    return acts.sum() if node.pos is None else acts[node.pos]
