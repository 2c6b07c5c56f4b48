"""What one forward pass of a Lens should do, and what it returns.

`RunPlan` is the single place where the attribution methods say how to run the spliced model:
which dictionary nodes to edit (patching), where to attach zero "leaf" tensors whose gradients are
node gradients, whether to keep the graph so later quantities can be differentiated against earlier
ones, and what to freeze (direct attribution). `RunResult` holds what came out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

GradientMode = Literal["straight_through", "detached"]
"""How gradients cross a splice `out = decode(f) + err`.

- "straight_through" (Marks et al. 2024): the error term is recomputed from the activation, so the
  splice is the identity from the activation to the output; gradients reach earlier layers exactly as
  in the model without SAEs, and the gradient w.r.t. a feature is `W_dec[i] . d(metric)/d(out)`.
- "detached" (SAE-Lens's `use_error_term`): the error term is a constant, so gradients reach earlier
  layers only through `decode(encode(x))`, i.e. through the SAE's encoder nonlinearity.
Both give the same forward values; only gradients that cross a splice differ.
"""

EMBED_SITE = "embed"
"""Pseudo-site of the token embeddings (`hook_embed` + `hook_pos_embed`): token nodes live here."""


@dataclass
class SiteEdit:
    """Changes to one site's nodes during a forward pass.

    Attributes:
        features: maps the features computed at the site, `[batch, pos, d_sae]`, to the values to
            write instead (the error term is kept).
        error: maps the error term `[batch, pos, d_out]` to the value to write instead.
        add: added to the site's output `[batch, pos, d_out]` (cheap single-node patches: moving
            feature i by `d` adds `d * W_dec[i]`).
    """

    features: Callable[[Tensor], Tensor] | None = None
    error: Callable[[Tensor], Tensor] | None = None
    add: Tensor | None = None


@dataclass
class Freeze:
    """What direct attribution freezes, with the clean run's values.

    LayerNorm scales (`*.hook_scale`) and attention patterns (`*.attn.hook_pattern`) are held at
    `cache`'s values. MLPs are either held at their clean output (`mlp="stop"`: a path through an
    MLP is not direct) or linearised with their activation's gates frozen (`mlp="linear"`:
    `post = pre * (post_clean / pre_clean)`). With `replace=False` the frozen tensors keep their
    current value but are detached (for gradients on the clean input, where the two agree).
    """

    cache: dict[str, Tensor]
    mlp: Literal["stop", "linear"] = "stop"
    replace: bool = True


@dataclass
class RunPlan:
    """How to run the spliced model once. The defaults give the plain spliced forward.

    `encode_sites`: when given, only these sites (and those with feature/error edits) encode and
    decode; the others apply their `add` edits and leaves to the activation directly. A
    straight-through splice is the identity, so values are unchanged and, in straight-through
    mode, gradients too: it only saves work. (In detached mode gradients through skipped sites
    change; use it there for gradient-free runs only.) Skipped sites record no features.
    `stop_at_layer`: stop after that many blocks (TransformerLens's `stop_at_layer`); `logits` then
    holds the residual stream, for runs whose targets all come earlier.
    `start_at_layer` with `start_resid` (`[batch, pos, d_model]`, the residual stream before that
    block, e.g. cached from a clean run): skip the embedding and the earlier blocks (block-local
    recomputation); hooks of skipped blocks do not fire, so no node before it can be read or edited.
    `capture_inputs`: sites whose dictionary input (the activation at `hook_in`) is kept in
    `RunResult.inputs` with its graph, without encoding the site.
    `logit_positions`: compute the logits at these positions only (`RunResult.logits` is then
    `[batch, len(logit_positions), d_vocab]`), for metrics that read nothing else
    (`feature_lens.attribution.metrics.at_one_position`); the unembedding is most of a pass's
    memory and a large share of its FLOPs at a GPT-2-sized vocabulary.
    """

    splice: bool = True
    error_term: bool = True
    gradient_mode: GradientMode | None = None
    edits: dict[str, SiteEdit] = field(default_factory=dict[str, SiteEdit])
    leaf_sites: Collection[str] = ()
    keep_graph: bool = False
    record_pre: Collection[str] = ()
    freeze: Freeze | None = None
    record_hooks: Collection[str] = ()
    encode_sites: Collection[str] | None = None
    stop_at_layer: int | None = None
    start_at_layer: int | None = None
    start_resid: Tensor | None = None
    capture_inputs: Collection[str] = ()
    logit_positions: Sequence[int] | None = None


@dataclass
class RunResult:
    """Outputs of `Lens.forward`.

    Attributes:
        logits: `[batch, pos, d_vocab]`.
        features: site -> feature activations `[batch, pos, d_sae]` (before any edit).
        errors: site -> error terms `[batch, pos, d_out]` (before any edit).
        leaves: site -> zero tensor added to the site's output; its `.grad` (or `autograd.grad`
            w.r.t. it) is the gradient w.r.t. the site's output. `EMBED_SITE` for token embeddings.
        pre_acts: site -> feature pre-activations, for sites in `RunPlan.record_pre`.
        embeddings: token-embedding values (`[batch, pos, d_model]`), the token nodes' activations.
        hooks: hook name -> activation, for `RunPlan.record_hooks`.
        inputs: site -> dictionary input (`hook_in` activation), for `RunPlan.capture_inputs`.
    """

    logits: Float[Tensor, "batch pos d_vocab"]
    features: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    errors: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    leaves: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    pre_acts: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    embeddings: Tensor | None = None
    hooks: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    inputs: dict[str, Tensor] = field(default_factory=dict[str, Tensor])


def frozen_gate(post: Tensor, pre: Tensor) -> Tensor:
    """The frozen activation function `post / pre` (0 where `pre` is 0): the one definition used by
    direct attribution's targets, its linearised MLPs, and the edge targets. For activation
    functions that are linear on each piece (ReLU, JumpReLU, TopK, gated), it is also the
    derivative of `post` w.r.t. `pre` at that point: 1 (or a constant scale) where a feature fires,
    0 where it does not."""
    nonzero = pre != 0
    return torch.where(nonzero, post / torch.where(nonzero, pre, 1), 0)


def finish_splice(
    out: Tensor,
    site: str,
    features: Tensor,
    error: Tensor,
    edit: SiteEdit | None,
    plan: RunPlan,
    result: RunResult,
    *,
    want_leaf: bool,
) -> Tensor:
    """The common end of every splice hook: add the edit's `add`, a zero leaf when the pass wants
    gradients at `site`, and record the site's features and error term in `result`."""
    if edit is not None and edit.add is not None:
        out = out + edit.add
    if want_leaf:
        leaf = torch.zeros_like(out, requires_grad=True)
        result.leaves[site] = leaf
        out = out + leaf
    result.features[site] = features if plan.keep_graph else features.detach()
    result.errors[site] = error if plan.keep_graph else error.detach()
    return out
