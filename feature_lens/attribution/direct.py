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

from collections.abc import Sequence
from typing import Literal

import torch

from feature_lens.attribution.gradients import gradient_edges, gradient_node_effects
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState
from feature_lens.lens import Freeze, Lens, RunPlan, freeze_cache_names

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
    """Direct edges u -> d (see the module docstring), by batched backward passes."""
    freeze = clean_freeze(lens, state.tokens, mlp=mlp)
    return gradient_edges(lens, state, upstream, downstream, batch_size=batch_size, freeze=freeze)
