"""Attribution graphs: a node table plus a weighted adjacency tensor indexed by node row.

An `AttributionGraph` is what every attribution method returns. It keeps the method and its
settings, the prompts' tokens, a `NodeTable` (one row per node: identity, place in the forward pass,
activation, effect on the metric) and its edges as a sparse COO adjacency: `edge_index[0]` holds
target rows, `edge_index[1]` source rows, `edge_weight` the weights (the source's effect on the
target's activation, on the metric when the target is the metric node). Zero weights are not
edges. Pruning (threshold, top-k, influence), influence itself, subgraphs, upstream/downstream
queries and the networkx export all work on these tensors; `nodes` and `edges` are read-only
dictionary views for convenience (built on first use, never on a hot path). Saving and loading:
`feature_lens.graph.storage` (format in docs/graph-format.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from jaxtyping import Bool, Float64, Int64
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.graph.schema import Method
from feature_lens.graph.table import NodeRecord, NodeTable
from feature_lens.typed import float_list, int_list, sparse_coo, unique_inverse


class NodesView(Mapping[str, NodeRecord]):
    """Read-only `{id: NodeRecord}` view of a node table, in row order."""

    def __init__(self, table: NodeTable) -> None:
        self._table = table

    def __getitem__(self, node_id: str) -> NodeRecord:
        return self._table.record(self._table.row_of[node_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.ids)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._table.row_of

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class AttributionGraph:
    """Nodes as a table, edges as a COO adjacency over node rows, with provenance (see the module
    docstring). Build one with `from_dense`, `from_records`, or the constructor."""

    method: Method
    metric: str
    table: NodeTable
    edge_index: Int64[Tensor, "2 e"] = field(
        default_factory=lambda: torch.zeros(2, 0, dtype=torch.int64)
    )
    edge_weight: Float64[Tensor, " e"] = field(
        default_factory=lambda: torch.zeros(0, dtype=torch.float64)
    )
    settings: dict[str, Any] = field(default_factory=dict[str, Any])
    prompts: list[list[str]] = field(default_factory=list[list[str]])

    def __post_init__(self) -> None:
        n, e = len(self.table), self.edge_weight.shape[0]
        if self.edge_index.shape != (2, e):
            raise InputError(
                f"edge_index has shape {tuple(self.edge_index.shape)}; it must be [2, {e}]"
            )
        if e and (int(self.edge_index.min()) < 0 or int(self.edge_index.max()) >= n):
            raise InputError(f"an edge points outside the {n} node rows (a dangling edge)")
        if len(self.ids) != len(self.table.row_of):
            seen: set[str] = set()
            duplicate = next(i for i in self.ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
            raise InputError(f"node {duplicate!r} appears twice; node ids must be unique")
        if int(self.table.is_kind("logit").sum()) != 1:
            raise InputError(
                f"a graph needs exactly one metric node (kind 'logit'), this one has "
                f"{int(self.table.is_kind('logit').sum())}"
            )

    # ------------------------------------------------------------------------ construction
    @classmethod
    def from_dense(
        cls,
        method: Method,
        metric: str,
        table: NodeTable,
        adjacency: Float64[Tensor, "n n"],
        settings: dict[str, Any] | None = None,
        prompts: list[list[str]] | None = None,
    ) -> AttributionGraph:
        """A graph from a dense `[target row, source row]` adjacency (zeros are not edges)."""
        adjacency = adjacency.detach().to("cpu", torch.float64)
        index = torch.nonzero(adjacency).T.contiguous()
        return cls(
            method,
            metric,
            table,
            index,
            adjacency[index[0], index[1]],
            dict(settings or {}),
            list(prompts or []),
        )

    @classmethod
    def from_records(
        cls,
        method: Method,
        metric: str,
        records: Sequence[NodeRecord] | Mapping[str, NodeRecord],
        edges: Mapping[tuple[str, str], float] | None = None,
        settings: dict[str, Any] | None = None,
        prompts: list[list[str]] | None = None,
    ) -> AttributionGraph:
        """A graph from node records and `{(source id, target id): weight}` (hand-built graphs)."""
        rows = list(records.values()) if isinstance(records, Mapping) else list(records)
        table = NodeTable.from_records(rows)
        items = list((edges or {}).items())
        missing = [
            pair for pair, _ in items if pair[0] not in table.row_of or pair[1] not in table.row_of
        ]
        if missing:
            raise InputError(f"edge {missing[0]} names a node that is not in the graph")
        targets = [table.row_of[t] for (_, t), _ in items]
        sources = [table.row_of[s] for (s, _), _ in items]
        weights = torch.tensor([w for _, w in items], dtype=torch.float64)
        index = torch.tensor([targets, sources], dtype=torch.int64).reshape(2, len(items))
        return cls(
            method, metric, table, index, weights, dict(settings or {}), list(prompts or [])
        ).coalesced()

    def coalesced(self) -> AttributionGraph:
        """Duplicate pairs summed, zero weights dropped, edges sorted by (target, source)."""
        n = len(self.table)
        if self.edge_weight.numel() == 0:
            return self
        keys, inverse = unique_inverse(self.edge_index[0] * n + self.edge_index[1])
        weights = torch.zeros(keys.numel(), dtype=torch.float64).index_add_(
            0, inverse, self.edge_weight.to(torch.float64)
        )
        keep = weights != 0
        keys = keys[keep]
        return self._with_edges(torch.stack([keys // n, keys % n]), weights[keep])

    def _with_edges(
        self, index: Int64[Tensor, "2 e"], weight: Float64[Tensor, " e"]
    ) -> AttributionGraph:
        return AttributionGraph(
            self.method, self.metric, self.table, index, weight, self.settings, self.prompts
        )

    def with_table(self, table: NodeTable) -> AttributionGraph:
        """The same edges over a table with the same rows and new values (`NodeTable.with_columns`)."""
        if table.ids != self.table.ids:
            raise InputError("the new node table must have the same nodes, in the same rows")
        return AttributionGraph(
            self.method,
            self.metric,
            table,
            self.edge_index,
            self.edge_weight,
            dict(self.settings),
            self.prompts,
        )

    # ------------------------------------------------------------------------------- views
    @property
    def ids(self) -> tuple[str, ...]:
        """Node ids, in row order."""
        return self.table.ids

    @property
    def nodes(self) -> NodesView:
        """Read-only `{id: NodeRecord}` view."""
        return NodesView(self.table)

    @cached_property
    def edges(self) -> Mapping[tuple[str, str], float]:
        """Read-only `{(source id, target id): weight}` view (built on first use)."""
        ids = self.ids
        targets, sources = int_list(self.edge_index[0]), int_list(self.edge_index[1])
        return MappingProxyType(
            {
                (ids[s], ids[t]): w
                for t, s, w in zip(targets, sources, float_list(self.edge_weight), strict=True)
            }
        )

    @property
    def n_edges(self) -> int:
        """Number of (nonzero) edges."""
        return int(self.edge_weight.shape[0])

    @property
    def adjacency(self) -> Float64[Tensor, "n n"]:
        """Sparse COO `[n_nodes, n_nodes]` tensor, `[target row, source row]`."""
        n = len(self.table)
        return sparse_coo(self.edge_index, self.edge_weight, (n, n))

    def dense_adjacency(self) -> Float64[Tensor, "n n"]:
        """The adjacency as a dense `[target row, source row]` matrix."""
        return self.adjacency.to_dense()

    @property
    def metric_row(self) -> int:
        """Row of the output node (kind "logit")."""
        return int(torch.nonzero(self.table.is_kind("logit"))[0, 0])

    @property
    def metric_node(self) -> NodeRecord:
        """The output node (kind "logit")."""
        return self.table.record(self.metric_row)

    def features(self) -> list[NodeRecord]:
        """Feature nodes, strongest effect first."""
        rows = torch.nonzero(self.table.is_kind("feature"))[:, 0]
        order = torch.argsort(-self.table.effect[rows].abs(), stable=True)
        return [self.table.record(int(r)) for r in rows[order]]

    def _neighbours(self, node_id: str, side: int) -> list[tuple[NodeRecord, float]]:
        if node_id not in self.table.row_of:
            raise InputError(f"no node {node_id!r} in the graph")
        hit = self.edge_index[side] == self.table.row_of[node_id]
        others, weights = self.edge_index[1 - side, hit], self.edge_weight[hit]
        order = torch.argsort(-weights.abs(), stable=True)
        return [
            (self.table.record(int(r)), float(w))
            for r, w in zip(others[order], weights[order], strict=True)
        ]

    def upstream(self, node_id: str) -> list[tuple[NodeRecord, float]]:
        """Sources of edges into `node_id`, by |weight|."""
        return self._neighbours(node_id, 0)

    def downstream(self, node_id: str) -> list[tuple[NodeRecord, float]]:
        """Targets of edges out of `node_id`, by |weight|."""
        return self._neighbours(node_id, 1)

    def to_networkx(self) -> Any:
        """A `networkx.DiGraph` with node attributes from `NodeRecord` and edge attribute `weight`."""
        import networkx

        nx: Any = networkx  # networkx's stubs leave node types unknown
        graph = nx.DiGraph()
        ids = self.ids
        graph.add_nodes_from(
            (ids[row], self.table.record(row).as_dict()) for row in range(len(ids))
        )
        targets, sources = int_list(self.edge_index[0]), int_list(self.edge_index[1])
        graph.add_weighted_edges_from(
            (ids[s], ids[t], w)
            for t, s, w in zip(targets, sources, float_list(self.edge_weight), strict=True)
        )
        return graph

    # ----------------------------------------------------------------------------- pruning
    def select(self, keep: Bool[Tensor, " n"]) -> AttributionGraph:
        """The graph restricted to the rows where the boolean mask `keep` is true (the metric node
        is always kept); rows keep their relative order."""
        keep = keep.clone()
        keep[self.metric_row] = True
        rows = torch.nonzero(keep)[:, 0]
        new_row = torch.full((len(self.table),), -1, dtype=torch.int64)
        new_row[rows] = torch.arange(rows.numel())
        inside = keep[self.edge_index[0]] & keep[self.edge_index[1]]
        return AttributionGraph(
            self.method,
            self.metric,
            self.table.select(rows),
            new_row[self.edge_index[:, inside]],
            self.edge_weight[inside],
            {**self.settings},
            self.prompts,
        )

    def subgraph(self, keep: set[str] | Sequence[str]) -> AttributionGraph:
        """The graph restricted to node ids `keep` (the metric node is always kept)."""
        mask = torch.zeros(len(self.table), dtype=torch.bool)
        rows = [self.table.row_of[i] for i in keep if i in self.table.row_of]
        mask[torch.tensor(rows, dtype=torch.int64)] = True
        return self.select(mask)

    def prune_threshold(self, *, node: float = 0.0, edge: float = 0.0) -> AttributionGraph:
        """Keep nodes with |effect| >= `node` and edges with |weight| >= `edge`."""
        kept = self.select(self.table.effect.abs() >= node)
        strong = kept.edge_weight.abs() >= edge
        return kept._with_edges(kept.edge_index[:, strong], kept.edge_weight[strong])

    def prune_topk(self, k: int) -> AttributionGraph:
        """Keep the `k` non-metric nodes with the largest |effect| (ties: earlier row first)."""
        if k < 0:
            raise InputError(f"k must be >= 0, got {k}")
        strength = self.table.effect.abs().clone()
        strength[self.metric_row] = -1.0
        order = torch.argsort(-strength, stable=True)[: min(k, len(self.table) - 1)]
        mask = torch.zeros(len(self.table), dtype=torch.bool)
        mask[order] = True
        return self.select(mask)

    def influence_scores(self) -> Float64[Tensor, " n"]:
        """Each row's influence on the metric through the graph: the total of |edge weight|
        products over all paths to the metric node, with each node's incoming |weights| normalised
        to sum to 1 (as circuit-tracer's pruning does); the metric node has influence 1.

        Error nodes have no incoming edges (docs/methods.md), so a path's credit ends at the error
        term it passes through: the error node keeps the influence that flows into it."""
        n = len(self.table)
        targets, sources = self.edge_index
        weights = self.edge_weight.abs()
        totals = torch.zeros(n, dtype=torch.float64).index_add_(0, targets, weights)
        normalised = torch.where(
            totals[targets] > 0, weights / totals[targets].clamp_min(1e-300), 0
        )
        current = torch.zeros(n, dtype=torch.float64)
        current[self.metric_row] = 1.0
        total = torch.zeros(n, dtype=torch.float64)
        # influence = start @ (A + A^2 + ...): edges go forward, so A is nilpotent and this ends.
        for _ in range(n):
            current = torch.zeros(n, dtype=torch.float64).index_add_(
                0, sources, current[targets] * normalised
            )
            if not bool(current.any()):
                break
            total += current
        total[self.metric_row] = 1.0
        return total

    def influence(self) -> dict[str, float]:
        """`influence_scores` by node id."""
        return dict(zip(self.ids, float_list(self.influence_scores()), strict=True))

    def prune_influence(self, fraction: float = 0.8) -> AttributionGraph:
        """Keep the most influential nodes that together hold `fraction` of the total influence."""
        if not 0 < fraction <= 1:
            raise InputError(f"fraction must be in (0, 1], got {fraction}")
        scores = self.influence_scores().clone()
        scores[self.metric_row] = 0.0
        total = float(scores.sum())
        order = torch.argsort(-scores, stable=True)
        before = torch.cumsum(scores[order], 0) - scores[order]
        mask = torch.zeros(len(self.table), dtype=torch.bool)
        chosen = order if total <= 0 else order[before < fraction * total]
        mask[chosen] = True
        mask[self.metric_row] = False
        return self.select(mask)

    # ------------------------------------------------------------------------- persistence
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the graph (format v2: `path` JSON + tensors beside it; docs/graph-format.md),
        atomically; refuse to overwrite unless asked, and refuse non-finite values."""
        from feature_lens.graph.storage import save_graph

        return save_graph(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> AttributionGraph:
        """Read a graph written by `save` (format v2), or a version-1 JSON file; validated."""
        from feature_lens.graph.storage import load_graph

        return load_graph(path)
