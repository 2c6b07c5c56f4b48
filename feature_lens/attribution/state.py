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
from torch import Tensor

from feature_lens.attribution.baselines import NodeValues
from feature_lens.attribution.nodes import Node
from feature_lens.lens import EMBED_SITE, Lens, SiteEdit

Positions = Literal["keep", "sum"]


@dataclass
class PromptState:
    """One prompt: tokens `[1, pos]`, answers `[1, k]`, clean values and baselines."""

    tokens: Tensor
    answers: Tensor | None
    clean: NodeValues
    base: NodeValues
    gates: dict[str, Tensor] = field(default_factory=dict)
    """Per site, the clean run's post/pre activation ratio `[pos, d_sae]` (filled on demand by
    `gate_values`; direct attribution freezes activation functions at these)."""

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
            acts = self.clean.errors[node.site][0].norm(dim=-1)
        else:
            acts = self.clean.embeddings[0].norm(dim=-1)
        return float(acts.sum() if node.pos is None else acts[node.pos])


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
            nodes += [
                Node("feature", site, int(p), int(i)) for p, i in torch.nonzero(diff != 0).tolist()
            ]
        err_diff = (state.clean.errors[site][0] - state.base.errors[site][0]).abs().sum(-1)
        if positions == "sum":
            nodes += [Node("error", site)] if err_diff.sum() > 0 else []
        else:
            nodes += [
                Node("error", site, int(p)) for p in torch.nonzero(err_diff > 0)[:, 0].tolist()
            ]
    emb_diff = (state.clean.embeddings[0] - state.base.embeddings[0]).abs().sum(-1)
    nodes += [Node("token", EMBED_SITE, int(p)) for p in torch.nonzero(emb_diff > 0)[:, 0].tolist()]
    return nodes


def patch_add(lens: Lens, state: PromptState, node: Node) -> tuple[str, Tensor]:
    """(site, `[pos, d_out]` tensor) to add to that site's output to set `node` to its baseline.

    Moving feature i by `d` moves the output by `d * W_dec[i]` because decoders are affine; error
    and token nodes move by their own difference.
    """
    n_pos = state.tokens.shape[1]
    minus_delta = -state.delta(node)
    if node.kind == "feature":
        assert node.index is not None
        direction = lens.dictionary(node.site).W_dec[node.index]
        add = minus_delta[:, None] * direction[None, :]
    else:
        add = minus_delta
    if node.pos is not None:
        mask = torch.zeros(n_pos, 1, dtype=add.dtype, device=add.device)
        mask[node.pos] = 1
        add = add * mask
    return (EMBED_SITE if node.kind == "token" else node.site), add


def batched_patch_edits(
    lens: Lens, state: PromptState, nodes: Sequence[Node]
) -> dict[str, SiteEdit]:
    """Edits for a batch with row r setting `nodes[r]` to its baseline (one patch per row)."""
    n_pos = state.tokens.shape[1]
    adds: dict[str, Tensor] = {}
    for row, node in enumerate(nodes):
        site, add = patch_add(lens, state, node)
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
) -> Tensor:
    """First-order scores grad . (a - b), `[rows, len(nodes)]`, from gradients w.r.t. site outputs
    (`grads[site]`: `[rows, pos, d_out]`). A feature's gradient is `W_dec[i] . grad`; an
    all-positions node sums its per-position scores. Vectorised per site: one matrix product for all
    of a site's features, whatever the number of rows."""
    rows = next(iter(grads.values())).shape[0]
    out = torch.zeros(
        rows, len(nodes), dtype=state.clean.embeddings.dtype, device=state.tokens.device
    )
    groups: dict[tuple[str, str], list[int]] = {}
    for j, node in enumerate(nodes):
        site = EMBED_SITE if node.kind == "token" else node.site
        groups.setdefault((node.kind, site), []).append(j)
    with torch.no_grad():
        for (kind, site), columns in groups.items():
            if site not in grads:
                continue
            grad = grads[site]  # [rows, pos, d_out]
            members = [nodes[j] for j in columns]
            if kind == "feature":
                index = torch.tensor([n.index for n in members], device=grad.device)
                delta = state.clean.features[site][0][:, index] - state.base.features[site][0][
                    :, index
                ].expand(grad.shape[1], -1)  # [pos, n]
                per_pos = (
                    grad @ lens.dictionary(site).W_dec[index].T.to(grad.dtype)
                ) * delta  # [rows, pos, n]
            else:
                if kind == "error":
                    clean, base = state.clean.errors[site][0], state.base.errors[site][0]
                else:
                    clean, base = state.clean.embeddings[0], state.base.embeddings[0]
                per_pos = (grad * (clean - base.expand_as(clean))).sum(
                    -1, keepdim=True
                )  # [rows, pos, 1]
                per_pos = per_pos.expand(-1, -1, len(members))
            pos = torch.tensor(
                [-1 if n.pos is None else n.pos for n in members], device=grad.device
            )
            picked = per_pos.gather(1, pos.clamp_min(0).view(1, 1, -1).expand(rows, 1, -1)).squeeze(
                1
            )
            summed = per_pos.sum(1)
            out[:, columns] = torch.where(pos >= 0, picked, summed).to(out.dtype)
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
    return dict(zip(node_list, scores.tolist(), strict=True))
