"""Direct attribution: the effect along direct paths only, in a model made linear by freezing.

Frozen at their values on the clean prompt:
- every LayerNorm's scale (`*.hook_scale`; the centring stays, it is linear);
- every attention pattern (`*.attn.hook_pattern`), so attention is a fixed linear map of its values
  (the OV circuit) and nothing flows through queries and keys;
- MLPs, in one of two ways: `mlp="stop"` (default) holds each MLP's output, so a path through an MLP
  is not direct — it is mediated by that MLP's neurons or transcoder features, which are nodes of
  their own; `mlp="linear"` keeps MLPs on the path with each activation function replaced by its
  frozen gate `post_clean / pre_clean`, so the MLP is linear too;
- the target feature's own activation function, as its gate `post_clean / pre_clean` (1 for an
  active ReLU/JumpReLU/TopK feature, 0 for an inactive one): the target is `gate * pre`.
Dictionaries between source and target are transparent (their error terms are recomputed, so the
splice is the identity). What remains is the residual stream plus attention OV circuits (plus
linearised MLPs with `mlp="linear"`): a linear map from each source node to each target, so
    direct(u -> d) = d(gate_d * pre_d)/d a_u . (a_u - b_u)
is exact, not an approximation: it equals the change in `gate_d * pre_d` when u is moved to its
baseline in the frozen model (the tests check this against such an intervention). With the zero
baseline it is u's contribution to d's activation; contributions of all nodes of one upstream site,
plus that site's decoder bias, plus everything that does not pass through it, add up to the target.

The scores come from batched backward passes through the frozen model (one row per target), so
paths through attention across positions are included; with `mlp="stop"` and residual SAEs, an edge
from an earlier residual SAE is its virtual weight `W_dec[u] . W_enc[:, d]` plus the attention paths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.gradients import (
    edge_mask,
    edges_from_matrix,
    gradient_edge_matrix,
    gradient_node_effects,
    gradient_row_edges,
)
from feature_lens.attribution.metrics import Metric, evaluate, metric_sites, needs_features
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState, gradient_score_matrix
from feature_lens.attribution.targets import feature_targets
from feature_lens.errors import InputError
from feature_lens.lens import EMBED_SITE, Freeze, Lens, RunPlan, freeze_cache_names
from feature_lens.lens.cross_layer import CrossLayerSite

MlpMode = Literal["stop", "linear"]


def clean_freeze(
    lens: Lens, tokens: Int[Tensor, "batch pos"], *, mlp: MlpMode = "stop", replace: bool = False
) -> Freeze:
    """The `Freeze` of direct attribution, with the clean run's LayerNorm scales, attention
    patterns and MLP values for `tokens`."""
    if mlp not in ("stop", "linear"):
        raise ValueError(f"mlp must be 'stop' or 'linear', got {mlp!r}")
    names = freeze_cache_names(lens.model, mlp)
    # Skip transcoders: their clean input, so a held output can move by the skip term's change.
    names += [d.hook_in for d in lens.dictionaries.values() if d.has_skip]
    # The splices are identities, so the model's own forward gives the same values without
    # encoding any dictionary.
    with torch.no_grad():
        result = lens.forward(tokens, RunPlan(splice=False, record_hooks=names))
    return Freeze(cache=dict(result.hooks), mlp=mlp, replace=replace)


def direct_node_effects(
    lens: Lens, state: PromptState, metric: Metric, nodes: Sequence[Node], *, mlp: MlpMode = "stop"
) -> dict[Node, float]:
    """Each node's direct effect on the metric (exact for metrics linear in the logits, such as a
    logit difference; first order in the frozen model otherwise)."""
    return gradient_node_effects(lens, state, metric, nodes, freeze=state_freeze(lens, state, mlp))


def direct_node_effect_rows(
    lens: Lens,
    state: PromptState,
    metrics: Sequence[Metric],
    nodes: Sequence[Node],
    *,
    mlp: MlpMode = "stop",
) -> Tensor:
    """`direct_node_effects` of several metrics at once, `[len(metrics), len(nodes)]`: one
    forward, one batched backward (a one-hot row per metric)."""
    sites = [*lens.sites, EMBED_SITE]
    plan = RunPlan(
        leaf_sites=sites,
        keep_graph=any(needs_features(m) for m in metrics),
        freeze=state_freeze(lens, state, mlp),
        gradient_mode="straight_through",
        encode_sites=set[str]().union(*(metric_sites(m) for m in metrics)),
    )
    result = lens.forward(state.tokens, plan)
    values = torch.stack([evaluate(m, result, state.answers).sum() for m in metrics])
    present = [s for s in sites if s in result.leaves]
    eye = torch.eye(len(metrics), dtype=values.dtype, device=values.device)
    grads = cast(
        "tuple[Tensor | None, ...]",
        torch.autograd.grad(
            values,
            [result.leaves[s] for s in present],
            eye,
            is_grads_batched=True,
            allow_unused=True,
        ),
    )
    grad_map = {
        s: torch.zeros(
            len(metrics), *result.leaves[s].shape[1:], dtype=values.dtype, device=values.device
        )
        if g is None
        else g[:, 0]
        for s, g in zip(present, grads, strict=True)
    }
    return gradient_score_matrix(lens, state, grad_map, nodes)


def state_freeze(lens: Lens, state: PromptState, mlp: MlpMode) -> Freeze:
    """`clean_freeze` for the state's prompt, computed once per state and MLP mode."""
    if mlp not in state.freezes:
        state.freezes[mlp] = clean_freeze(lens, state.tokens, mlp=mlp)
    return state.freezes[mlp]


def direct_edge_matrix(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    targets: Sequence[Node],
    *,
    mlp: MlpMode = "stop",
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> Float[Tensor, "upstream targets"]:
    """Direct edges as a matrix `[len(upstream), len(targets)]` (targets: feature nodes; zero
    where u fires at or after d).

    Where no attention layer lies between where u writes and where d reads (and MLPs are held),
    the frozen path is the residual stream alone and the edge is computed in closed form,
    `(a_u - b_u) . (W_dec[u] . J_d) . gate_d` at the same position, with `J_d` the (constant)
    Jacobian of d's pre-activation: one matrix product per target site. All other pairs come
    from batched backward passes through the frozen model. The two agree (tested).
    """
    dtype = state.clean.embeddings.dtype
    out = torch.zeros(len(upstream), len(targets), dtype=dtype, device=state.tokens.device)
    if not upstream or not targets:
        return out
    upstream_sites = sorted({u.writes_to for u in upstream})
    target_sites = sorted({d.site for d in targets})
    # Decided once per (source site, target site): closed form, backward, or no edge at all.
    route = {(us, ds): _route(lens, us, ds) for us in upstream_sites for ds in target_sites}
    if mlp != "stop" or any(
        d.has_skip or isinstance(d, CrossLayerSite) for d in lens.dictionaries.values()
    ):
        # A skip transcoder's skip term, and a cross-layer transcoder's writes into later
        # layers, are paths the closed form does not follow.
        route = {key: ("backward" if how == "closed" else how) for key, how in route.items()}
    backward_sites = {ds for (_, ds), how in route.items() if how == "backward"}
    backward = [j for j, d in enumerate(targets) if d.site in backward_sites]
    if backward:
        freeze = state_freeze(lens, state, mlp)
        out[:, backward] = gradient_edge_matrix(
            lens,
            state,
            upstream,
            [targets[j] for j in backward],
            batch_size=batch_size,
            freeze=freeze,
            memory_budget=memory_budget,
        )
    closed_sites = sorted({ds for (_, ds), how in route.items() if how == "closed"})
    if closed_sites:
        with torch.no_grad():
            for site in closed_sites:
                columns = [j for j, d in enumerate(targets) if d.site == site]
                rows = [i for i, u in enumerate(upstream) if route[(u.writes_to, site)] == "closed"]
                if not columns or not rows:
                    continue
                site_targets = [targets[j] for j in columns]
                spec = feature_targets(lens, state, site, site_targets)
                jacobian, gate = spec.columns, spec.gate  # [d_in, T], [pos, T]
                positions = torch.tensor(
                    [-1 if d.pos is None else d.pos for d in site_targets], device=out.device
                )
                by_source: dict[tuple[str, str], list[int]] = {}
                for i in rows:
                    by_source.setdefault((upstream[i].kind, upstream[i].writes_to), []).append(i)
                for (kind, source_site), members in by_source.items():
                    group = [upstream[i] for i in members]
                    if (
                        kind == "feature"
                        and all(u.pos is not None for u in group)
                        and bool((positions >= 0).all())
                    ):
                        # Single positions throughout: (a_u - b_u) * (W_dec[u] . J[:, t]) *
                        # gate[p_t, t] where p_u == p_t; no position axis needed.
                        u_index = torch.tensor([u.index for u in group], device=out.device)
                        u_pos = torch.tensor([u.pos for u in group], device=out.device)
                        clean = state.clean.features[source_site][0]
                        base = state.base.features[source_site][0].expand_as(clean)
                        delta = clean[u_pos, u_index] - base[u_pos, u_index]
                        virtual = (
                            lens.dictionary(source_site).W_dec[u_index].to(jacobian.dtype)
                            @ jacobian
                        )
                        same = (u_pos[:, None] == positions[None, :]).to(virtual.dtype)
                        values = (
                            virtual
                            * delta[:, None]
                            * gate[positions, torch.arange(len(positions))][None, :]
                            * same
                        )
                        out[torch.tensor(members)[:, None], torch.tensor(columns)[None, :]] = (
                            values.to(dtype)
                        )
                        continue
                    if kind == "feature":
                        # (a_u - b_u)[p] * (W_dec[u] . J[:, t]) * gate[p, t]: the write factorises.
                        u_index = torch.tensor([u.index for u in group], device=out.device)
                        delta = _feature_delta(state, source_site, u_index, group)  # [U, pos]
                        virtual = (
                            lens.dictionary(source_site).W_dec[u_index].to(jacobian.dtype)
                            @ jacobian
                        )
                        per_pos = (
                            delta[:, :, None] * virtual[:, None, :] * gate[None]
                        )  # [U, pos, T]
                    else:
                        writes = source_writes(lens, state, group)  # [U, pos, d_in]
                        per_pos = (writes @ jacobian.to(writes.dtype)) * gate  # [U, pos, T]
                    picked = per_pos.gather(
                        1, positions.clamp_min(0).view(1, 1, -1).expand(len(group), 1, -1)
                    ).squeeze(1)
                    values = torch.where(positions >= 0, picked, per_pos.sum(1))
                    out[torch.tensor(members)[:, None], torch.tensor(columns)[None, :]] = values.to(
                        dtype
                    )
    return out * edge_mask(lens, upstream, targets).to(out.device)


def direct_row_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    targets: Sequence[Node],
    *,
    mlp: MlpMode = "stop",
) -> Float[Tensor, "upstream targets"]:
    """Per-row direct edges `[len(upstream), len(targets)]`: column r the direct edges into
    `targets[r]` on the state's prompt r (`gradient_row_edges` in the frozen model of the whole
    batch; every pair by the backward pass, which is exact, so no closed-form route is needed).
    Equal to `direct_edge_matrix` on each row's own batch-1 state."""
    freeze = state_freeze(lens, state, mlp)
    return gradient_row_edges(lens, state, upstream, targets, freeze=freeze)


def direct_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    *,
    mlp: MlpMode = "stop",
    batch_size: int | None = None,
    memory_budget: int | None = None,
) -> dict[tuple[Node, Node], float]:
    """`direct_edge_matrix` as `{(u, d): weight}` for every u firing before feature node d."""
    upstream = list(upstream)
    targets = [d for d in downstream if d.kind == "feature"]
    matrix = direct_edge_matrix(
        lens,
        state,
        upstream,
        targets,
        mlp=mlp,
        batch_size=batch_size,
        memory_budget=memory_budget,
    )
    return edges_from_matrix(matrix, upstream, targets, edge_mask(lens, upstream, targets))


def source_writes(
    lens: Lens, state: PromptState, nodes: Sequence[Node]
) -> Float[Tensor, "nodes pos d_out"]:
    """What moving each node from its baseline to its clean value adds to its site's output,
    `[len(nodes), pos, d_out]` (all nodes must write the same width): `(a - b) W_dec[i]` for
    features, `err - err_b` for error terms, `emb - emb_b` for tokens; at the node's position, or
    at every position for an all-positions node. Vectorised per site. A cross-layer
    transcoder's feature writes into several sites, so it has no single write here: refused."""
    for node in nodes:
        if node.kind == "feature" and isinstance(lens.dictionary(node.site), CrossLayerSite):
            raise InputError(
                f"{node} is a cross-layer transcoder feature, which writes into every later "
                "layer's output; use feature_writes(lens.dictionary(site)) for its writes"
            )
    n_pos = state.tokens.shape[1]
    out: Tensor | None = None
    groups: dict[tuple[str, str], list[int]] = {}
    for j, node in enumerate(nodes):
        groups.setdefault((node.kind, node.writes_to), []).append(j)
    for (kind, site), members in groups.items():
        group = [nodes[j] for j in members]
        if kind == "feature":
            index = torch.tensor([n.index for n in group], device=state.tokens.device)
            delta = state.clean.features[site][0][:, index] - state.base.features[site][0][
                :, index
            ].expand(n_pos, -1)
            written = torch.einsum(
                "pn,nd->npd", delta, lens.dictionary(site).W_dec[index].to(delta.dtype)
            )
        else:
            clean = state.clean.errors[site][0] if kind == "error" else state.clean.embeddings[0]
            base = state.base.errors[site][0] if kind == "error" else state.base.embeddings[0]
            written = (clean - base.expand_as(clean)).unsqueeze(0).expand(len(group), -1, -1)
        positions = torch.tensor(
            [-1 if n.pos is None else n.pos for n in group], device=written.device
        )
        at = torch.arange(n_pos, device=written.device)
        mask = ((at[None, :] == positions[:, None]) | (positions[:, None] < 0)).to(written.dtype)[
            ..., None
        ]
        if out is None:
            out = torch.zeros(
                len(nodes), n_pos, written.shape[-1], dtype=written.dtype, device=written.device
            )
        out[members] = written * mask
    assert out is not None
    return out


def _feature_delta(
    state: PromptState, site: str, index: Int[Tensor, " U"], group: Sequence[Node]
) -> Float[Tensor, "U pos"]:
    """`[len(group), pos]`: a_u - b_u at each position, zero outside a per-position node's own."""
    n_pos = state.tokens.shape[1]
    clean = state.clean.features[site][0][:, index]
    delta = (clean - state.base.features[site][0][:, index].expand_as(clean)).T  # [U, pos]
    positions = torch.tensor([-1 if n.pos is None else n.pos for n in group], device=delta.device)
    at = torch.arange(n_pos, device=delta.device)
    return delta * ((at[None, :] == positions[:, None]) | (positions[:, None] < 0)).to(delta.dtype)


_STREAM = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_mid|attn_out|resid_post|mlp_out)$")
_OFFSET = {"resid_pre": 0, "resid_mid": 1, "attn_out": 1, "resid_post": 2, "mlp_out": 2}


def _stream_point(hook: str) -> int | None:
    """Where a hook sits on the residual stream: 2L before block L's attention, 2L+1 between its
    attention and MLP, 2L+2 after; attention/MLP outputs count where they are added."""
    if hook == EMBED_SITE:
        return 0
    match = _STREAM.match(hook)
    return None if match is None else 2 * int(match.group(1)) + _OFFSET[match.group(2)]


def _route(lens: Lens, source_site: str, target_site: str) -> str:
    """ "none" (the source fires after the target), "closed" (the residual stream alone connects
    them: no attention layer between, and the target reads the raw stream), or "backward"."""
    if lens.site_order(source_site) >= lens.site_order(target_site):
        return "none"
    target = lens.dictionary(target_site)
    if not target.hook_in.endswith(("hook_resid_pre", "hook_resid_mid", "hook_resid_post")):
        return "backward"
    start = _stream_point(
        source_site if source_site == EMBED_SITE else lens.dictionary(source_site).hook_out
    )
    end = _stream_point(target.hook_in)
    if start is None or end is None or end < start:
        return "backward"
    first_attention = 2 * ((start + 1) // 2)  # the first block L with 2L >= start reads there
    return "backward" if first_attention + 1 <= end else "closed"


def closed_form_pair(lens: Lens, u: Node, d: Node) -> bool:
    """Whether the direct edge u -> d is computed in closed form (see `_route`)."""
    return _route(lens, u.writes_to, d.site) == "closed"
