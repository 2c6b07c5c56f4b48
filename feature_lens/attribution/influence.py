"""Influence on the output: greedy feature selection and graph pruning (circuit-tracer's rules).

Both work on a dense adjacency `A [n, n]` (row = target, column = source) over feature, error,
token and logit nodes, with weights `w` on the logit rows. `N = |A|` with each row divided by its
sum; a node's influence is `w (N + N^2 + ...)`: its share of the weighted output through all paths.

**Greedy selection** (`greedy_rows`, circuit-tracer's `max_feature_nodes`). Rows are computed in
rounds: first the logit rows, then, repeatedly, the unvisited features ranked by their influence in
the partial graph of the rows computed so far (power iteration over those rows only), the top
`update_interval * batch_size` of them (fewer when fewer remain to select) in batches of
`batch_size`, until `max_features` features have rows. When every active feature is selected the
ranking is skipped and all rows are asked for at once (the kernel batches them itself). The selected features are the ones with
rows; the graph keeps them, all error and token nodes, and the logits.

**Pruning** (`prune_masks`, circuit-tracer's `prune_graph`): keep the nodes holding
`node_threshold` of the total node influence (the smallest set, by influence, whose cumulative
share reaches it; token and logit nodes always stay); in the graph restricted to them, score each
edge `N[t, s] (I_t + w_t)` and keep the edges holding `edge_threshold` of the total edge score;
then repeatedly drop feature and error nodes without a kept outgoing edge, feature nodes without
a kept incoming edge, and the edges of dropped nodes, until nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from feature_lens.errors import InputError


def _normalised(rows: Tensor, floor: float) -> Tensor:
    magnitude = rows.abs()
    return magnitude / magnitude.sum(1, keepdim=True).clamp_min(floor)


def partial_influence(
    rows: Tensor, row_nodes: Tensor, start: Tensor, *, max_iter: int = 128
) -> Tensor:
    """Influence of every column node in the partial graph whose computed rows are `rows`
    `[r, n]` (row i is the inputs of node `row_nodes[i]`), starting from `start [n]` (the logit
    weights at the logit columns): `sum_k start_k (N^k)` by power iteration over the rows."""
    normalised = _normalised(rows.double(), 1e-8)
    influence = torch.zeros(rows.shape[1], dtype=torch.float64)
    current = start.double()
    for _ in range(max_iter):
        current = current[row_nodes] @ normalised
        if not bool(current.any()):
            return influence
        influence += current
    raise InputError(
        f"the influence did not converge in {max_iter} steps: the graph has a cycle; edges must "
        "go forward"
    )


def greedy_rows(
    n_features: int,
    max_features: int,
    logit_rows: Tensor,
    logit_weights: Tensor,
    feature_rows: Callable[[Tensor], Tensor],
    *,
    batch_size: int,
    update_interval: int = 4,
) -> tuple[Tensor, Tensor]:
    """Select features greedily by influence (module docstring). Columns are
    `[features (n_features), other nodes, logits (k)]`; `logit_rows [k, n]`, `logit_weights
    [k]`; `feature_rows(index)` returns the rows `[len(index), n]` of those features. Returns the
    selected feature indices (ascending) and their rows `[len(selected), n]` in the same order."""
    if max_features < 1:
        raise InputError(
            f"max_feature_nodes (--max-feature-nodes) must be >= 1, got {max_features}"
        )
    if batch_size < 1 or update_interval < 1:
        raise InputError(
            f"batch_size and update_interval must be >= 1, got {batch_size} and {update_interval}"
        )
    k, n = logit_rows.shape
    max_features = min(max_features, n_features)
    rows = [logit_rows.double()]
    row_nodes = [torch.arange(n - k, n)]
    start = torch.zeros(n, dtype=torch.float64)
    start[n - k :] = logit_weights.double()
    visited = torch.zeros(n_features, dtype=torch.bool)
    done = 0
    while done < max_features:
        if max_features == n_features:
            # No ranking: one call, so the rows' batches follow the kernel's own grouping.
            pending = torch.arange(n_features)
            batch_size = max(n_features, 1)
        else:
            influence = partial_influence(torch.cat(rows), torch.cat(row_nodes), start)
            rank = torch.argsort(influence[:n_features], descending=True, stable=True)
            pending = rank[~visited[rank]][: min(update_interval * batch_size, max_features - done)]
        for begin in range(0, len(pending), batch_size):
            index = pending[begin : begin + batch_size]
            rows.append(feature_rows(index).double())
            row_nodes.append(index)
            visited[index] = True
            done += len(index)
    selected = torch.nonzero(visited)[:, 0]
    if done == 0:
        return selected, torch.zeros(0, n, dtype=torch.float64)
    by_node = torch.cat(rows[1:])[torch.argsort(torch.cat(row_nodes[1:]))]
    return selected, by_node


def node_influence(adjacency: Tensor, weights: Tensor) -> Tensor:
    """`w (N + N^2 + ...)` for a whole graph (`weights [n]`: the logit weights, 0 elsewhere).
    Summed term by term: the graph is acyclic, so `w N^k` is exactly zero once k exceeds its
    depth (a few vector-matrix products, where a solve of `1 - N` costs O(n^3))."""
    return influence_of_normalised(_normalised(adjacency.double(), 1e-10), weights)


def influence_of_normalised(normalised: Tensor, weights: Tensor) -> Tensor:
    """`node_influence` from the row-normalised `|A|` itself (callers that also need `N`)."""
    current = weights.double() @ normalised
    total = current.clone()
    for _ in range(len(normalised)):
        if not bool(current.any()):
            return total
        current = current @ normalised
        total += current
    raise InputError("the graph has a cycle: influence is defined for edges that go forward")


def _cutoff(scores: Tensor, threshold: float) -> Tensor:
    """The smallest score still kept when keeping the largest scores up to a cumulative share of
    `threshold` of their sum (the first one at or past it included)."""
    ordered = torch.sort(scores, descending=True).values
    share = torch.cumsum(ordered, 0) / ordered.sum()
    at = min(
        int(torch.searchsorted(share, torch.tensor([threshold], dtype=share.dtype))), len(share) - 1
    )
    return ordered[at]


def prune_masks(
    adjacency: Tensor,
    kinds: Sequence[str],
    logit_weights: Tensor,
    *,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
) -> tuple[Tensor, Tensor]:
    """(node mask `[n]`, edge mask `[n, n]`) of the pruned graph (module docstring)."""
    for name, value in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
        if not 0.0 <= value <= 1.0:
            raise InputError(f"the pruning {name} must be in [0, 1], got {value!r}")
    is_kind = {
        k: torch.tensor([x == k for x in kinds], dtype=torch.bool) for k in ("feature", "error")
    }
    always = torch.tensor([x in ("token", "logit") for x in kinds], dtype=torch.bool)
    weights = logit_weights.double()
    influence = node_influence(adjacency, weights)
    node_mask = (influence >= _cutoff(influence, node_threshold)) | always
    pruned = adjacency.double() * node_mask[:, None] * node_mask[None, :]
    normalised = _normalised(pruned, 1e-10)
    edge_scores = normalised * (node_influence(pruned, weights) + weights)[:, None]
    edge_mask = edge_scores >= _cutoff(edge_scores.flatten(), edge_threshold)
    writers = is_kind["feature"] | is_kind["error"]

    def drop_unconnected(mask: Tensor) -> Tensor:
        mask = mask & (~writers | edge_mask.any(0))
        return mask & (~is_kind["feature"] | edge_mask.any(1))

    before, node_mask = node_mask, drop_unconnected(node_mask)
    while not bool((node_mask == before).all()):
        before = node_mask
        edge_mask &= node_mask[:, None] & node_mask[None, :]
        node_mask = drop_unconnected(node_mask)
    return node_mask, edge_mask
