"""Total attribution patching and integrated gradients (Marks et al. 2024, Sparse Feature Circuits).

**Attribution patching** replaces each exact patch by its first-order estimate through all paths:
    effect(n) ~= d metric / d a_n . (a_n - b_n)
One forward and one backward give every node's score. Zero "leaf" tensors are added to each site's
output; the gradient w.r.t. a site's output `g` gives a feature's gradient as `W_dec[i] . g` (the
error term's gradient is `g` itself), so no tensor of width d_sae is kept in the autograd graph. A
cross-layer transcoder's feature writes into several outputs; its gradient sums `W_{l->k}[i] . g_k`
over them, so leaves sit at every output it writes (`write_sites`).
How gradients cross the *other* sites' splices is the Lens's gradient mode: straight-through by
default (the error term is recomputed from the activation, so the splice is the identity and the
gradient is the model's own, as in Marks et al.), or detached (SAE-Lens's splice: the error term is a
constant and gradients pass through the SAE's encoder).

**Integrated gradients** average the gradient along the straight line from the baseline to the clean
values. As in Marks et al., all nodes of one site (features and error) move together, the other
sites keep their clean values upstream and are recomputed downstream; `steps` points at the
midpoints of equal intervals, one batch row each. The scores of one site then sum to the effect of
patching the whole site (up to the quadrature error, which vanishes as `steps` grows).

**Edges** u -> d (d a feature) use d's activation as the metric (a `FeatureTargets` value: one
encoder column times the clean gate, never a dense encode). They are computed block-locally: per
target site, one batch-1 forward from the cached clean stream before the earliest upstream site's
block to the end of the target's block, then batched backward passes with one one-hot row per
target (`is_grads_batched`), which give, in row r, the gradients of target r w.r.t. every upstream
site. Leaves sit only at upstream sites, so the backward stops there; blocks outside that range
never run. The result equals a full-model run (tested in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from feature_lens.attribution.metrics import Metric, evaluate, metric_sites, needs_features
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import (
    PromptState,
    clean_stream,
    gradient_score_matrix,
    node_gradient_scores,
)
from feature_lens.attribution.targets import FeatureTargets, feature_targets
from feature_lens.lens import EMBED_SITE, Freeze, Lens, RunPlan, SiteEdit
from feature_lens.lens.cross_layer import feature_writes
from feature_lens.typed import bool_rows, float_rows, int_list


def gradient_node_effects(
    lens: Lens,
    state: PromptState,
    metric: Metric,
    nodes: Sequence[Node],
    *,
    freeze: Freeze | None = None,
) -> dict[Node, float]:
    """grad . (a - b) for each node, from one forward and one backward (`freeze`: direct mode).
    A state built with this metric's clean gradients (`PromptState.metric_gradients`) needs
    neither: the scores come from those."""
    cached = state.metric_gradients
    if freeze is None and cached is not None and cached[0] is metric:
        return node_gradient_scores(lens, state, cached[1], nodes)
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
    effects: dict[Node, float] = {}
    by_site: dict[str, list[Node]] = {}
    for node in nodes:
        by_site.setdefault(node.writes_to, []).append(node)
    for site, members in by_site.items():
        # A cross-layer transcoder's features also write into later layers' outputs: the
        # gradient there counts too.
        written = [site] if site == EMBED_SITE else write_sites(lens, site)
        plan = RunPlan(
            leaf_sites=written,
            keep_graph=needs_features(metric),
            edits={site: _interpolate(state, site, alphas)},
        )
        result = lens.forward(tokens, plan)
        value = evaluate(metric, result, answers).sum()
        # A site after a NodeActivation target does not reach it: its gradient is zero.
        if value.requires_grad:
            grads = _site_gradients(value, result.leaves, written)
        else:
            grads = {s: torch.zeros_like(leaf) for s, leaf in result.leaves.items()}
        mean_grads = {s: g.mean(0, keepdim=True) for s, g in grads.items()}
        effects.update(node_gradient_scores(lens, state, mean_grads, members))
    return {node: effects[node] for node in nodes}


def write_sites(lens: Lens, site: str) -> list[str]:
    """The site and every further site its features write into (cross-layer transcoders)."""
    return [site, *(s for s, _ in feature_writes(lens.dictionary(site)) if s != site)]


def _interpolate(state: PromptState, site: str, alphas: Float[Tensor, " steps"]) -> SiteEdit:
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
    batch_size: int | None = None,
    freeze: Freeze | None = None,
    memory_budget: int | None = None,
) -> Float[Tensor, "upstream targets"]:
    """First-order edges as a matrix `[len(upstream), len(targets)]` (targets: feature nodes):
    d a_d / d a_u . (a_u - b_u) through all paths, by batched backward passes; zero where u fires
    at or after d (see `edge_mask`).

    With `freeze` (direct attribution), the target is d's pre-activation times its frozen gate
    (post/pre on the clean run) in the frozen model, and the result is exact.

    Targets are grouped by site and sorted by position. For each chunk, one block-local forward
    runs at batch 1: from the cached clean stream before the block of the earliest upstream site
    that can reach the site (from the tokens when a token node is upstream) to the end of the
    site's block, over the prompt's prefix up to the chunk's last target, with leaves at the
    upstream sites and no logits; targets are `FeatureTargets` (one encoder column each). Then one
    batched backward (`autograd.grad(..., is_grads_batched=True)`, one one-hot row per target)
    gives every target's gradient w.r.t. every upstream site. Rows per backward: at most
    `batch_size`, and at most what `memory_budget` bytes allow (see `edge_rows`).
    """
    dtype = state.clean.embeddings.dtype
    out = torch.zeros(len(upstream), len(targets), dtype=dtype, device=state.tokens.device)
    if not upstream or not targets:
        return out
    by_site: dict[str, list[int]] = {}
    for j, d in enumerate(targets):
        by_site.setdefault(d.site, []).append(j)
    n_pos = int(state.tokens.shape[1])
    # Causal models: a target at position p depends on positions <= p only, so a chunk of targets
    # runs on the prefix up to its last target (targets sorted by position). Frozen values that
    # replace activations are full-length, so such runs keep the whole prompt.
    crop = freeze is None or not freeze.replace
    for site, columns in by_site.items():
        order = lens.site_order(site)
        rows_up = [i for i, u in enumerate(upstream) if lens.site_order(u.writes_to) < order]
        if not rows_up:
            continue
        sources = [upstream[i] for i in rows_up]
        up_index = torch.tensor(rows_up, device=out.device)
        last = {j: _last_position(targets[j], n_pos) for j in columns}
        columns = sorted(columns, key=lambda j: last[j])
        n_leaves = len({u.writes_to for u in sources})
        n_rows = min(batch_size or 512, edge_rows(lens, state, n_leaves, memory_budget))
        for start in range(0, len(columns), n_rows):
            chunk = columns[start : start + n_rows]
            length = max(last[j] for j in chunk) + 1 if crop else n_pos
            spec = feature_targets(lens, state, site, [targets[j] for j in chunk])
            values, leaves = _block_local_targets(lens, state, sources, spec, freeze, length)
            one_hot = torch.eye(len(chunk), dtype=values.dtype, device=out.device)
            grad_map = _batched_site_gradients(values, leaves, one_hot, n_pos)
            scores = gradient_score_matrix(lens, state, grad_map, sources)  # [rows, sources]
            out[up_index[:, None], torch.tensor(chunk, device=out.device)[None, :]] = scores.T.to(
                dtype
            )
    return out * edge_mask(lens, upstream, targets).to(out.device)


DEFAULT_MEMORY_BUDGET = 1 << 30
"""Default bytes for one batched backward pass of edge targets (1 GiB)."""


def edge_rows(lens: Lens, state: PromptState, n_leaves: int, memory_budget: int | None) -> int:
    """Targets per batched backward that fit `memory_budget` bytes (default 1 GiB), from an
    estimate of one row's working set in a block's backward: the gradients of the residual
    stream, attention inputs and scores, MLP hidden units, and of every leaf site, at every
    position. At least 1, at most 512 (wider batches stop paying off)."""
    cfg = lens.model.cfg
    n_pos = int(state.tokens.shape[1])
    d_model, d_mlp = int(cfg.d_model), int(cfg.d_mlp or 4 * cfg.d_model)
    itemsize = state.clean.embeddings.element_size()
    per_row = itemsize * n_pos * (d_model * (n_leaves + 8) + 2 * d_mlp + 3 * cfg.n_heads * n_pos)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    return max(1, min(512, budget // per_row))


def _block_local_targets(
    lens: Lens,
    state: PromptState,
    sources: Sequence[Node],
    spec: FeatureTargets,
    freeze: Freeze | None,
    length: int,
) -> tuple[Float[Tensor, " T"], dict[str, Tensor]]:
    """One batch-1 forward of the first `length` positions from the cached stream to the end of
    the targets' block: the targets' values `[T]` and the leaves `{site: [1, length, d]}` of the
    sources' sites."""
    with torch.enable_grad():
        inputs, leaves = _block_local_run(lens, state, sources, [spec.site], freeze, length)
        values = spec.values(inputs[spec.site][0])
    return values, leaves


def _block_local_run(
    lens: Lens,
    state: PromptState,
    sources: Sequence[Node],
    target_sites: Sequence[str],
    freeze: Freeze | None,
    length: int,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One forward of the state's prompts (every row), first `length` positions, from the cached
    clean stream before the first block the sources' sites (and, in detached mode, the splices
    between them and the targets) need, to the end of the last target site's block: the target
    sites' inputs `{site: [batch, length, d_in]}` and the leaves `{site: [batch, length, d]}` of
    the sources' sites, in the autograd graph."""
    straight = freeze is not None or lens.gradient_mode == "straight_through"
    leaf_sites = sorted({u.writes_to for u in sources}, key=lens.site_order)
    # Cross-layer transcoder features also write into later outputs before the target's.
    target_order = max(lens.site_order(site) for site in target_sites)
    leaf_sites += sorted(
        {
            s
            for site in leaf_sites
            if site != EMBED_SITE
            for s in write_sites(lens, site)
            if lens.site_order(s) < target_order
        }
        - set(leaf_sites),
        key=lens.site_order,
    )
    spliced = list(leaf_sites)
    if not straight:
        # Detached splices between the sources and the target carry gradients: they must run.
        first = lens.site_order(leaf_sites[0])
        last = max(lens.site_order(site) for site in target_sites)
        spliced += [s for s in lens.sites if first <= lens.site_order(s) <= last]
    start = lens.start_layer(spliced)
    stream = clean_stream(lens, state) if start is not None else {}
    plan = RunPlan(
        leaf_sites=leaf_sites,
        freeze=freeze,
        gradient_mode="straight_through" if freeze is not None else None,
        encode_sites=() if straight else None,
        capture_inputs=list(target_sites),
        stop_at_layer=lens.stop_layer(target_sites),
        start_at_layer=start,
        start_resid=(
            None if start is None else stream[f"blocks.{start}.hook_resid_pre"][:, :length]
        ),
    )
    result = lens.forward(state.tokens[:, :length], plan)
    leaves = {site: result.leaves[site] for site in leaf_sites if site in result.leaves}
    return result.inputs, leaves


def gradient_row_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    targets: Sequence[Node],
    *,
    freeze: Freeze | None = None,
) -> Float[Tensor, "upstream targets"]:
    """Per-row edges: `[len(upstream), len(targets)]`, column r the edges into `targets[r]` read on
    the state's prompt r (`len(targets) == state.batch`; targets: feature nodes, any sites), each
    u scored with prompt r's `a_u - b_u`; zero where u fires at or after the target.

    The same numbers as `gradient_edge_matrix` on each row's own batch-1 state (with `freeze`:
    direct attribution, exact), from one block-local forward of the whole batch and one backward:
    the rows of a batch do not interact, so the gradient of the sum of the rows' targets is, in
    row r, the gradient of target r alone. Many (prompt, target) pairs of one length then cost one
    pass, where the per-prompt kernel needs one per prompt (the dashboards' neighbour panels).
    Memory grows with the batch (one row of activations and gradients per prompt, as in
    `edge_rows`): bound it by the number of prompts in the state.
    """
    if len(targets) != state.batch:
        raise ValueError(f"one target per row: {len(targets)} targets for {state.batch} prompts")
    dtype = state.clean.embeddings.dtype
    out = torch.zeros(len(upstream), len(targets), dtype=dtype, device=state.tokens.device)
    if not upstream or not targets:
        return out
    mask = edge_mask(lens, upstream, targets).to(out.device)
    kept = torch.nonzero(mask.any(1))[:, 0]
    sources = [upstream[i] for i in int_list(kept)]
    if not sources:
        return out
    n_pos = int(state.tokens.shape[1])
    # Causal models: the rows' last target positions bound what must run (see gradient_edge_matrix).
    crop = freeze is None or not freeze.replace
    length = max(_last_position(d, n_pos) for d in targets) + 1 if crop else n_pos
    by_site: dict[str, list[int]] = {}
    for r, d in enumerate(targets):
        by_site.setdefault(d.site, []).append(r)
    with torch.enable_grad():
        inputs, leaves = _block_local_run(lens, state, sources, list(by_site), freeze, length)
        total = torch.zeros((), dtype=dtype, device=out.device)
        for site, rows in by_site.items():
            spec = feature_targets(lens, state, site, [targets[r] for r in rows], rows)
            total = total + spec.row_values(inputs[site][rows]).sum().to(dtype)
    grad_map = _site_gradients(total, leaves, list(leaves))
    grad_map = {
        site: torch.nn.functional.pad(g, (0, 0, 0, n_pos - g.shape[1]))
        for site, g in grad_map.items()
    }
    scores = gradient_score_matrix(lens, state, grad_map, sources)  # [rows, sources]
    out[kept] = scores.T.to(dtype)
    return out * mask


def _batched_site_gradients(
    values: Float[Tensor, " T"],
    leaves: dict[str, Tensor],
    one_hot: Float[Tensor, "rows T"],
    n_pos: int,
) -> dict[str, Tensor]:
    """Row r: the gradient of `one_hot[r] . values` w.r.t. each leaf, `{site: [rows, n_pos, d]}`
    (zero-padded after the leaves' positions; zeros where the values do not depend on a leaf),
    from one vectorised backward."""
    sites = list(leaves)
    grads = cast(
        "tuple[Tensor | None, ...]",
        torch.autograd.grad(
            values,
            [leaves[s] for s in sites],
            grad_outputs=one_hot,
            allow_unused=True,
            is_grads_batched=True,
        ),
    )
    rows = one_hot.shape[0]
    out: dict[str, Tensor] = {}
    for site, grad in zip(sites, grads, strict=True):
        leaf = leaves[site]
        if grad is not None and leaf.shape[1] == n_pos:
            out[site] = grad[:, 0]  # the whole prompt: no padding, no copy
            continue
        full = torch.zeros((rows, n_pos, *leaf.shape[2:]), dtype=leaf.dtype, device=leaf.device)
        if grad is not None:
            full[:, : leaf.shape[1]] = grad[:, 0]
        out[site] = full
    return out


def _last_position(node: Node, n_pos: int) -> int:
    """The last position a target reads: its own, or the prompt's last for all-position nodes."""
    return n_pos - 1 if node.pos is None else node.pos % n_pos


def edge_mask(
    lens: Lens, upstream: Sequence[Node], targets: Sequence[Node]
) -> Bool[Tensor, "upstream targets"]:
    """`[len(upstream), len(targets)]` booleans: u's site fires before d's (an edge can exist)."""
    sites = {EMBED_SITE, *(d.site for d in targets)}
    sites |= {u.writes_to for u in upstream}
    order = {site: lens.site_order(site) for site in sites}
    up = torch.tensor([order[u.writes_to] for u in upstream])
    down = torch.tensor([order[d.site] for d in targets])
    return up[:, None] < down[None, :]


def edges_from_matrix(
    matrix: Float[Tensor, "upstream targets"],
    upstream: Sequence[Node],
    targets: Sequence[Node],
    mask: Bool[Tensor, "upstream targets"],
) -> dict[tuple[Node, Node], float]:
    """The `{(u, d): weight}` view of an edge matrix, for the pairs `mask` allows."""
    values = float_rows(matrix)
    allowed = bool_rows(mask)
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
    batch_size: int | None = None,
    freeze: Freeze | None = None,
    memory_budget: int | None = None,
) -> dict[tuple[Node, Node], float]:
    """`gradient_edge_matrix` as `{(u, d): weight}` for every u firing before feature node d."""
    upstream = list(upstream)
    targets = [d for d in downstream if d.kind == "feature"]
    matrix = gradient_edge_matrix(
        lens,
        state,
        upstream,
        targets,
        batch_size=batch_size,
        freeze=freeze,
        memory_budget=memory_budget,
    )
    return edges_from_matrix(matrix, upstream, targets, edge_mask(lens, upstream, targets))


def _site_gradients(
    value: Float[Tensor, ""], leaves: dict[str, Tensor], sites: Sequence[str]
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
