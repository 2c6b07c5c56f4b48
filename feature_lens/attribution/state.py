"""Per-prompt node state shared by the three methods: clean values, baselines, and the node set.

All methods score the same quantity for a node n with clean value a_n and baseline b_n:
    effect(n) = metric(clean) - metric(clean with n := b_n)
exactly (activation patching), to first order (attribution patching: grad . (a_n - b_n)), along a
straight line from b to a (integrated gradients), or in the frozen linear model (direct).
Edges u -> d score d's activation in place of the metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.baselines import (
    BaselineKind,
    NodeValues,
    baseline_values,
    node_values,
    node_values_with_gradients,
)
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.prompts import PromptSet
from feature_lens.lens import EMBED_SITE, Freeze, Lens, RunPlan, SiteEdit
from feature_lens.lens.cross_layer import feature_writes
from feature_lens.typed import float_list, int_list, int_rows, unique_values, vector_norm

Positions = Literal["keep", "sum"]


@dataclass
class PromptState:
    """Prompts of one length: tokens `[batch, pos]`, answers `[batch, k]`, clean values
    `[batch, pos, ...]` and baselines (broadcastable to them).

    Most kernels take one prompt (`batch` 1: `prompt_states` makes those). A state of several
    prompts serves the per-row kernels (`gradient_row_edges`, `direct_row_edges`), where row r has
    a target of its own, so many (prompt, target) pairs share one forward and one backward;
    `row(r)` is the batch-1 state of one of its prompts.
    """

    tokens: Int[Tensor, "batch pos"]
    answers: Int[Tensor, "batch k"] | None
    clean: NodeValues
    base: NodeValues
    gates: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    """Per site, the clean run's post/pre activation ratio `[batch, pos, d_sae]` (filled on demand
    by `targets.clean_gates`; targets and direct attribution freeze activation functions at these)."""
    cache: dict[str, Tensor] = field(default_factory=dict[str, Tensor])
    """Clean activations by hook name (`[batch, pos, d]`, one forward, filled on demand by
    `clean_stream`): the residual stream before every block and every dictionary's input, from
    which block-local passes start and targets' gates are computed."""
    freezes: dict[str, Freeze] = field(default_factory=dict[str, Freeze])
    """Direct attribution's `Freeze` per MLP mode, filled on demand (see `direct.clean_freeze`)."""
    metric_gradients: tuple[Metric, dict[str, Tensor]] | None = None
    """A metric and its gradients w.r.t. every site's output `{site: [1, pos, d]}` at the clean
    point, when the state was built by the same forward (`StreamedStates.iterate(gradients_for=)`);
    attribution patching then needs no forward of its own."""

    @property
    def batch(self) -> int:
        """How many prompts the state holds."""
        return int(self.tokens.shape[0])

    def row(self, r: int) -> PromptState:
        """The batch-1 state of prompt `r` (views of this state's tensors and caches)."""
        if self.batch == 1:
            return self

        def pick(t: Tensor) -> Tensor:
            return t[r : r + 1] if t.shape[0] > 1 else t

        base = self.base
        return PromptState(
            self.tokens[r : r + 1],
            None if self.answers is None else self.answers[r : r + 1],
            self.clean.row(r),
            NodeValues(
                {s: pick(v) for s, v in base.features.items()},
                {s: pick(v) for s, v in base.errors.items()},
                pick(base.embeddings),
            ),
            {s: v[r : r + 1] for s, v in self.gates.items()},
            {name: v[r : r + 1] for name, v in self.cache.items()},
        )

    def delta(self, node: Node) -> Tensor:
        """a - b for the node: `[pos]` for features, `[pos, d]` for errors and tokens (all
        positions; callers select `node.pos`)."""
        if node.kind == "feature":
            assert node.index is not None
            a = self.clean.features[node.site][0, :, node.index]
            b = self.base.features[node.site][..., node.index].reshape(-1)
            return a - b.expand_as(a) if b.numel() == 1 else a - b
        if node.kind == "error":
            a = self.clean.errors[node.site][0]
            return a - self.base.errors[node.site][0].expand_as(a)
        a = self.clean.embeddings[0]
        return a - self.base.embeddings[0].expand_as(a)

    def activation(self, node: Node) -> float:
        """The node's clean activation: feature value, or the L2 norm of an error/embedding vector
        (summed over positions for all-position nodes)."""
        if node.kind == "feature":
            assert node.index is not None
            acts = self.clean.features[node.site][0, :, node.index]
        elif node.kind == "error":
            acts = vector_norm(self.clean.errors[node.site][0])
        else:
            acts = vector_norm(self.clean.embeddings[0])
        return float(acts.sum() if node.pos is None else acts[node.pos])


class StreamedStates:
    """The prompts' `PromptState`s, built one at a time as they are iterated (one forward of the
    clean prompt, and of the corrupted one for that baseline), never all held at once: a pass of
    `attribute` over n prompts keeps one state alive, so its peak memory does not grow with n.
    Shared baselines ("zero", "mean") are computed once. Iterate as often as needed; each pass
    recomputes the states (a forward per prompt, small next to scoring them)."""

    def __init__(
        self,
        lens: Lens,
        prompts: PromptSet,
        baseline: BaselineKind,
        *,
        mean_tokens: Int[Tensor, "m pos"] | None = None,
    ) -> None:
        self.lens, self.prompts = lens, prompts
        self.shared: NodeValues | None = None
        if baseline != "corrupted" or prompts.corrupted is None:
            # Also raises the clear error for "corrupted" without corrupted prompts.
            self.shared = baseline_values(lens, prompts, baseline, mean_tokens=mean_tokens)

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> PromptState:
        return self.state(i)

    def state(self, i: int, gradients_for: Metric | None = None) -> PromptState:
        """Prompt i's state; with `gradients_for`, the clean forward also gives that metric's
        gradients (`PromptState.metric_gradients`), so attribution patching runs no forward."""
        prompts = self.prompts
        answers = None if prompts.answers is None else prompts.answers[i : i + 1]
        grads = None
        if gradients_for is None:
            clean = node_values(self.lens, prompts.clean[i : i + 1])
        else:
            clean, site_grads = node_values_with_gradients(
                self.lens, prompts.clean[i : i + 1], answers, gradients_for
            )
            grads = (gradients_for, site_grads)
        if self.shared is not None:
            base = self.shared.row(0)
        else:
            assert prompts.corrupted is not None
            base = node_values(self.lens, prompts.corrupted[i : i + 1])
        return PromptState(prompts.clean[i : i + 1], answers, clean, base, metric_gradients=grads)

    def iterate(self, gradients_for: Metric | None = None) -> Iterator[PromptState]:
        """The states in order (see `state`)."""
        for i in range(len(self)):
            yield self.state(i, gradients_for)

    def __iter__(self) -> Iterator[PromptState]:
        return self.iterate()


def clean_stream(lens: Lens, state: PromptState) -> dict[str, Tensor]:
    """Clean activations `[batch, pos, d]` of the model (no splice: the splices are identities)
    at `blocks.L.hook_resid_pre` for every block and at every dictionary's `hook_in`, from one
    forward per prompt state, cached on it."""
    names = stream_hooks(lens)
    missing = [name for name in names if name not in state.cache]
    if missing:
        with torch.no_grad():
            # Every block runs (its resid_pre is recorded); no logits are needed unless a hook
            # lies after the blocks.
            inside = all(name.startswith("blocks.") for name in missing)
            stop = int(lens.model.cfg.n_layers) if inside else None
            plan = RunPlan(splice=False, record_hooks=missing, stop_at_layer=stop)
            result = lens.forward(state.tokens, plan)
        state.cache.update({name: result.hooks[name] for name in missing})
    return state.cache


def stream_hooks(lens: Lens) -> list[str]:
    """The hook names `clean_stream` caches (sorted): every block's `hook_resid_pre` and every
    dictionary's `hook_in`."""
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(int(lens.model.cfg.n_layers))]
    return sorted({*names, *(lens.dictionary(site).hook_in for site in lens.sites)})


def clean_inputs(lens: Lens, state: PromptState) -> dict[str, Tensor]:
    """Each site's clean dictionary input `[batch, pos, d_in]` (see `clean_stream`)."""
    cache = clean_stream(lens, state)
    return {site: cache[lens.dictionary(site).hook_in] for site in lens.sites}


def candidate_nodes(lens: Lens, state: PromptState, positions: Positions) -> list[Node]:
    """Every node whose clean value differs from its baseline (patching it changes something)."""
    nodes: list[Node] = []
    for site in lens.sites:
        diff = state.clean.features[site][0] - state.base.features[site][0].expand_as(
            state.clean.features[site][0]
        )
        if positions == "sum":
            nodes += [
                Node("feature", site, None, int(i))
                for i in torch.nonzero(diff.abs().sum(0) > 0)[:, 0]
            ]
        else:
            nodes += [Node("feature", site, p, i) for p, i in int_rows(torch.nonzero(diff != 0))]
        err_diff = (state.clean.errors[site][0] - state.base.errors[site][0]).abs().sum(-1)
        if positions == "sum":
            nodes += [Node("error", site)] if err_diff.sum() > 0 else []
        else:
            nodes += [Node("error", site, p) for p in int_list(torch.nonzero(err_diff > 0)[:, 0])]
    emb_diff = (state.clean.embeddings[0] - state.base.embeddings[0]).abs().sum(-1)
    nodes += [Node("token", EMBED_SITE, p) for p in int_list(torch.nonzero(emb_diff > 0)[:, 0])]
    return nodes


def patch_adds(lens: Lens, state: PromptState, node: Node) -> list[tuple[str, Tensor]]:
    """(site, `[pos, d_out]` tensor) pairs to add to those sites' outputs to set `node` to its
    baseline.

    Moving feature i by `d` moves each output it writes by `d * W[i]` because decoders are affine
    (one site, `W_dec`, for an SAE or transcoder; every later layer for a cross-layer
    transcoder, see `feature_writes`); error and token nodes move by their own difference.
    """
    n_pos = state.tokens.shape[1]
    minus_delta = -state.delta(node)
    if node.kind == "feature":
        assert node.index is not None
        index = node.index
        writes = [
            (site, minus_delta[:, None] * weight[index][None, :])
            for site, weight in feature_writes(lens.dictionary(node.site))
        ]
    else:
        writes = [(node.writes_to, minus_delta)]
    if node.pos is None:
        return writes
    mask = torch.zeros(n_pos, 1, dtype=minus_delta.dtype, device=minus_delta.device)
    mask[node.pos] = 1
    return [(site, add * mask.to(add.dtype)) for site, add in writes]


def batched_patch_edits(
    lens: Lens, state: PromptState, nodes: Sequence[Node]
) -> dict[str, SiteEdit]:
    """Edits for a batch with row r setting `nodes[r]` to its baseline (one patch per row)."""
    n_pos = state.tokens.shape[1]
    adds: dict[str, Tensor] = {}
    for row, node in enumerate(nodes):
        for site, add in patch_adds(lens, state, node):
            if site not in adds:
                adds[site] = torch.zeros(
                    len(nodes), n_pos, add.shape[-1], dtype=add.dtype, device=add.device
                )
            adds[site][row] += add
    return {site: SiteEdit(add=add) for site, add in adds.items()}


def chunks(items: Sequence[Node], size: int) -> Iterator[Sequence[Node]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def gradient_score_matrix(
    lens: Lens, state: PromptState, grads: dict[str, Tensor], nodes: Sequence[Node]
) -> Float[Tensor, "rows nodes"]:
    """First-order scores grad . (a - b), `[rows, len(nodes)]`, from gradients w.r.t. site outputs
    (`grads[site]`: `[rows, pos, d_out]`). A feature's gradient is `W_dec[i] . grad`, summed over
    the outputs it writes for a cross-layer transcoder; an all-positions node sums its
    per-position scores. Per site and position, one matrix product
    for the nodes there (only their decoder rows are gathered), so the cost scales with the
    nodes, not with positions x nodes or d_sae. A state of one prompt scores every row on it; a
    state of `rows` prompts scores row r on prompt r (`a - b` of that prompt)."""
    rows = next(iter(grads.values())).shape[0]
    out = torch.zeros(
        rows, len(nodes), dtype=state.clean.embeddings.dtype, device=state.tokens.device
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for j, node in enumerate(nodes):
        site = node.writes_to
        groups.setdefault((node.kind, site), []).append(j)
    with torch.no_grad():
        for (kind, site), columns in groups.items():
            members = [nodes[j] for j in columns]
            column_ids = torch.tensor(columns, device=out.device)
            if kind == "feature":
                # A feature's gradient sums over every output it writes (several for a
                # cross-layer transcoder); outputs without a gradient cannot reach the value.
                writes = [
                    (grads[target], weight)
                    for target, weight in feature_writes(lens.dictionary(site))
                    if target in grads
                ]
                if not writes:
                    continue
                scores = _feature_scores(state, site, members, writes, lens.dictionary(site).d_sae)
            else:
                if site not in grads:
                    continue
                grad = grads[site]  # [rows, pos, d_out]
                positions = torch.tensor(
                    [-1 if n.pos is None else n.pos for n in members], device=grad.device
                )
                if kind == "error":
                    clean_v, base_v = state.clean.errors[site], state.base.errors[site]
                else:
                    clean_v, base_v = state.clean.embeddings, state.base.embeddings
                per_pos = (grad * (clean_v - base_v.expand_as(clean_v)).to(grad.dtype)).sum(-1)
                picked = per_pos[:, positions.clamp_min(0)]  # [rows, n]
                scores = torch.where(positions >= 0, picked, per_pos.sum(1, keepdim=True))
            out[:, column_ids] = scores.to(out.dtype)
    return out


def node_gradient_scores(
    lens: Lens, state: PromptState, grads: dict[str, Tensor], nodes: Iterable[Node], row: int = 0
) -> dict[Node, float]:
    """First-order scores of `nodes` in batch row `row` (see `gradient_score_matrix`)."""
    node_list = list(nodes)
    if not node_list:
        return {}
    scores = gradient_score_matrix(
        lens, state, {s: g[row : row + 1] for s, g in grads.items()}, node_list
    )[0]
    return dict(zip(node_list, float_list(scores), strict=True))


def _feature_scores(
    state: PromptState,
    site: str,
    members: Sequence[Node],
    writes: Sequence[tuple[Float[Tensor, "rows pos d_out"], Float[Tensor, "d_sae d_out"]]],
    d_sae: int,
) -> Float[Tensor, "rows nodes"]:
    """`gradient_score_matrix` for feature nodes of one site, `[rows, len(members)]`: (a - b)
    times `sum over writes of W[i] . grad` at each feature's position (summed over positions for
    all-position nodes); `writes` pairs each output the features write (one for an SAE, every
    later layer for a cross-layer transcoder) with its gradient and decoder."""
    grad0 = writes[0][0]
    dtype, device = grad0.dtype, grad0.device
    positions = torch.tensor([-1 if n.pos is None else n.pos for n in members], device=device)
    index = torch.tensor([n.index for n in members], device=device)
    clean, base = state.clean.features[site], state.base.features[site]
    scores = torch.zeros(grad0.shape[0], len(members), dtype=dtype, device=device)
    summed = torch.nonzero(positions < 0)[:, 0]
    at_positions = int_list(unique_values(positions[positions >= 0]))
    for grad, weight_all in writes:
        if 2 * len(summed) >= d_sae:
            # Most of the dictionary: one dense product costs less than gathering their columns.
            delta = (clean - base.expand_as(clean)).to(dtype)  # [b, pos, d_sae]
            dense = ((grad @ weight_all.T.to(dtype)) * delta).sum(1)  # [rows, d_sae]
            scores[:, summed] += dense[:, index[summed]]
        elif len(summed):
            picked = index[summed]
            shape = (clean.shape[0], clean.shape[1], -1)
            delta = clean[:, :, picked] - base[:, :, picked].expand(*shape)
            weight = weight_all[picked].to(dtype)  # [n, d]
            scores[:, summed] += ((grad @ weight.T) * delta.to(dtype)).sum(1)
        for pos in at_positions:
            at = torch.nonzero(positions == pos)[:, 0]
            picked = index[at]
            at_pos = clean[:, pos, picked] - base[:, pos if base.shape[1] > 1 else 0, picked]
            weight = weight_all[picked].to(dtype)
            scores[:, at] += (grad[:, pos] @ weight.T) * at_pos.to(dtype)
    return scores
