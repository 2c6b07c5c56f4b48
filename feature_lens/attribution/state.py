"""Per-prompt node state shared by the three methods: clean values, baselines, and the node set.

All methods score the same quantity for a node n with clean value a_n and baseline b_n:
    effect(n) = metric(clean) - metric(clean with n := b_n)
exactly (activation patching), to first order (attribution patching: grad . (a_n - b_n)), along a
straight line from b to a (integrated gradients), or in the frozen linear model (direct).
Edges u -> d score d's activation in place of the metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
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


def node_gradient_scores(
    lens: Lens, state: PromptState, grads: dict[str, Tensor], nodes: Iterable[Node], row: int = 0
) -> dict[Node, float]:
    """First-order scores grad . (a - b) for `nodes`, from gradients w.r.t. site outputs
    (`grads[site]`: `[batch, pos, d_out]`, row `row`); feature gradients are `W_dec[i] . grad`."""
    scores: dict[Node, float] = {}
    with torch.no_grad():
        for node in nodes:
            scores[node] = _gradient_score(lens, state, grads, node, row)
    return scores


def _gradient_score(
    lens: Lens, state: PromptState, grads: dict[str, Tensor], node: Node, row: int
) -> float:
    """grad . (a - b) of one node (summed over positions for an all-positions node)."""
    site = EMBED_SITE if node.kind == "token" else node.site
    if site not in grads:
        return 0.0
    grad = grads[site][row]  # [pos, d_out]
    delta = state.delta(node)
    if node.kind == "feature":
        assert node.index is not None
        per_pos = (grad @ lens.dictionary(node.site).W_dec[node.index]) * delta
    else:
        per_pos = (grad * delta).sum(-1)
    return float(per_pos.sum() if node.pos is None else per_pos[node.pos])
