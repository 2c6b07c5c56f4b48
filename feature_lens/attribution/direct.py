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
from typing import Literal

import torch

from feature_lens.attribution.gradients import gate_values, gradient_edges, gradient_node_effects
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState, patch_add
from feature_lens.lens import EMBED_SITE, Freeze, Lens, RunPlan, freeze_cache_names

MlpMode = Literal["stop", "linear"]


def clean_freeze(
    lens: Lens, tokens: torch.Tensor, *, mlp: MlpMode = "stop", replace: bool = False
) -> Freeze:
    """The `Freeze` of direct attribution, with the clean run's LayerNorm scales, attention
    patterns and MLP values for `tokens`."""
    if mlp not in ("stop", "linear"):
        raise ValueError(f"mlp must be 'stop' or 'linear', got {mlp!r}")
    names = freeze_cache_names(lens.model, mlp)
    with torch.no_grad():
        result = lens.forward(tokens, RunPlan(record_hooks=names))
    return Freeze(cache=dict(result.hooks), mlp=mlp, replace=replace)


def direct_node_effects(
    lens: Lens, state: PromptState, metric: Metric, nodes: Sequence[Node], *, mlp: MlpMode = "stop"
) -> dict[Node, float]:
    """Each node's direct effect on the metric (exact for metrics linear in the logits, such as a
    logit difference; first order in the frozen model otherwise)."""
    freeze = clean_freeze(lens, state.tokens, mlp=mlp)
    return gradient_node_effects(lens, state, metric, nodes, freeze=freeze)


def direct_edges(
    lens: Lens,
    state: PromptState,
    upstream: Sequence[Node],
    downstream: Sequence[Node],
    *,
    mlp: MlpMode = "stop",
    batch_size: int = 64,
) -> dict[tuple[Node, Node], float]:
    """Direct edges u -> d (see the module docstring).

    Where no attention layer lies between where u writes and where d reads (and MLPs are held),
    the frozen path is the residual stream alone and the edge is computed in closed form,
    `(a_u - b_u) . (W_dec[u] . J_d) . gate_d` at the same position, with `J_d` the (constant)
    Jacobian of d's pre-activation; all other pairs come from batched backward passes through
    the frozen model. The two agree (tested).
    """
    targets = [d for d in downstream if d.kind == "feature"]
    closed: dict[tuple[Node, Node], float] = {}
    if mlp == "stop":
        closed = _closed_form_edges(lens, state, upstream, targets)
    covered = {d for (_, d) in closed}
    rest = [
        d for d in targets if any(_needs_backward(lens, u, d) for u in upstream) or d not in covered
    ]
    edges: dict[tuple[Node, Node], float] = {}
    if rest:
        freeze = clean_freeze(lens, state.tokens, mlp=mlp)
        edges = gradient_edges(lens, state, upstream, rest, batch_size=batch_size, freeze=freeze)
    edges.update(closed)
    return edges


_STREAM = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_mid|attn_out|resid_post|mlp_out)$")
_OFFSET = {"resid_pre": 0, "resid_mid": 1, "attn_out": 1, "resid_post": 2, "mlp_out": 2}


def _stream_point(hook: str) -> int | None:
    """Where a hook sits on the residual stream: 2L before block L's attention, 2L+1 between its
    attention and MLP, 2L+2 after; attention/MLP outputs count where they are added."""
    if hook == EMBED_SITE:
        return 0
    match = _STREAM.match(hook)
    return None if match is None else 2 * int(match.group(1)) + _OFFSET[match.group(2)]


def _closed_form_pair(lens: Lens, u: Node, d: Node) -> bool:
    """Whether u -> d is the residual stream alone (no attention between; d reads the raw stream)."""
    if lens.site_order(EMBED_SITE if u.kind == "token" else u.site) >= lens.site_order(d.site):
        return False
    target = lens.dictionary(d.site)
    if not target.hook_in.endswith(("hook_resid_pre", "hook_resid_mid", "hook_resid_post")):
        return False
    start = _stream_point(EMBED_SITE if u.kind == "token" else lens.dictionary(u.site).hook_out)
    end = _stream_point(target.hook_in)
    if start is None or end is None or end < start:
        return False
    first_attention = 2 * ((start + 1) // 2)  # the first block L with 2L >= start reads there
    return not first_attention + 1 <= end


def _needs_backward(lens: Lens, u: Node, d: Node) -> bool:
    before = lens.site_order(EMBED_SITE if u.kind == "token" else u.site) < lens.site_order(d.site)
    return before and not _closed_form_pair(lens, u, d)


def _closed_form_edges(
    lens: Lens, state: PromptState, upstream: Sequence[Node], targets: Sequence[Node]
) -> dict[tuple[Node, Node], float]:
    """Closed-form direct edges for the pairs `_closed_form_pair` accepts."""
    pairs = {(u, d) for d in targets for u in upstream if _closed_form_pair(lens, u, d)}
    if not pairs:
        return {}
    target_sites = sorted({d.site for _, d in pairs})
    gates = gate_values(lens, state, target_sites)
    edges: dict[tuple[Node, Node], float] = {}
    with torch.no_grad():
        for site in target_sites:
            site_targets = sorted({d for _, d in pairs if d.site == site})
            sources = sorted({u for u, d in pairs if d.site == site})
            index = torch.tensor([d.index for d in site_targets], device=state.tokens.device)
            jacobian = lens.dictionary(site).pre_jacobian()[:, index]  # [d_in, T]
            # What moving each source from its baseline to its clean value writes: [U, pos, d_in].
            writes = torch.stack([-patch_add(lens, state, u)[1] for u in sources])
            per_pos = (writes @ jacobian.to(writes.dtype)) * gates[site][:, index]  # [U, pos, T]
            positions = torch.tensor(
                [-1 if d.pos is None else d.pos for d in site_targets], device=per_pos.device
            )
            picked = per_pos.gather(
                1, positions.clamp_min(0).view(1, 1, -1).expand(len(sources), 1, -1)
            ).squeeze(1)
            values = torch.where(positions >= 0, picked, per_pos.sum(1)).tolist()  # [U][T]
            for i, u in enumerate(sources):
                for j, d in enumerate(site_targets):
                    if (u, d) in pairs:
                        edges[(u, d)] = values[i][j]
    return edges
