"""Attribution graphs: nodes with effects on a metric, weighted edges across layers.

An `AttributionGraph` is what every attribution method returns. It keeps the method and its
settings, aggregates over prompts (mean) — positions are kept or summed when it is computed — and
can be pruned by threshold, top-k, or influence on the metric, saved and loaded as JSON (schema in
`feature_lens.graph.schema`), and viewed as a networkx DiGraph.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from feature_lens.errors import InputError, LoadingError, OutputExistsError
from feature_lens.graph.schema import EdgeRecord, GraphRecord, Method, NodeRecord


@dataclass
class AttributionGraph:
    """Nodes (by id) and edges `(source id, target id) -> weight`, with provenance."""

    method: Method
    metric: str
    nodes: dict[str, NodeRecord]
    edges: dict[tuple[str, str], float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    prompts: list[list[str]] = field(default_factory=list)

    # ------------------------------------------------------------------------------ views
    @property
    def metric_node(self) -> NodeRecord:
        """The output node (kind "logit")."""
        return next(n for n in self.nodes.values() if n.kind == "logit")

    def features(self) -> list[NodeRecord]:
        """Feature nodes, strongest effect first."""
        return sorted(
            (n for n in self.nodes.values() if n.kind == "feature"), key=lambda n: -abs(n.effect)
        )

    def upstream(self, node_id: str) -> list[tuple[NodeRecord, float]]:
        """Sources of edges into `node_id`, by |weight|."""
        items = [(self.nodes[s], w) for (s, t), w in self.edges.items() if t == node_id]
        return sorted(items, key=lambda item: -abs(item[1]))

    def downstream(self, node_id: str) -> list[tuple[NodeRecord, float]]:
        """Targets of edges out of `node_id`, by |weight|."""
        items = [(self.nodes[t], w) for (s, t), w in self.edges.items() if s == node_id]
        return sorted(items, key=lambda item: -abs(item[1]))

    def to_networkx(self) -> Any:
        """A `networkx.DiGraph` with node attributes from `NodeRecord` and edge attribute `weight`."""
        import networkx as nx

        graph = nx.DiGraph()
        for node in self.nodes.values():
            graph.add_node(node.id, **node.model_dump())
        for (source, target), weight in self.edges.items():
            graph.add_edge(source, target, weight=weight)
        return graph

    # --------------------------------------------------------------------------- pruning
    def subgraph(self, keep: set[str]) -> AttributionGraph:
        """The graph restricted to node ids `keep` (the metric node is always kept)."""
        keep = keep | {self.metric_node.id}
        return AttributionGraph(
            self.method,
            self.metric,
            {i: n for i, n in self.nodes.items() if i in keep},
            {e: w for e, w in self.edges.items() if e[0] in keep and e[1] in keep},
            {**self.settings},
            self.prompts,
        )

    def prune_threshold(self, *, node: float = 0.0, edge: float = 0.0) -> AttributionGraph:
        """Keep nodes with |effect| >= `node` and edges with |weight| >= `edge`."""
        kept = self.subgraph({i for i, n in self.nodes.items() if abs(n.effect) >= node})
        kept.edges = {e: w for e, w in kept.edges.items() if abs(w) >= edge}
        return kept

    def prune_topk(self, k: int) -> AttributionGraph:
        """Keep the `k` non-metric nodes with the largest |effect|."""
        if k < 0:
            raise InputError(f"k must be >= 0, got {k}")
        ranked = sorted(
            (n for n in self.nodes.values() if n.kind != "logit"), key=lambda n: -abs(n.effect)
        )
        return self.subgraph({n.id for n in ranked[:k]})

    def influence(self) -> dict[str, float]:
        """Each node's influence on the metric through the graph: the total of |edge weight|
        products over all paths to the metric node, with each node's incoming |weights| normalised
        to sum to 1 (as circuit-tracer's pruning does); the metric node has influence 1."""
        ids = list(self.nodes)
        index = {node_id: i for i, node_id in enumerate(ids)}
        n = len(ids)
        adjacency = torch.zeros(n, n, dtype=torch.float64)  # [target, source]
        for (source, target), weight in self.edges.items():
            adjacency[index[target], index[source]] = abs(weight)
        totals = adjacency.sum(1, keepdim=True)
        adjacency = torch.where(totals > 0, adjacency / totals.clamp_min(1e-30), 0)
        start = torch.zeros(n, dtype=torch.float64)
        start[index[self.metric_node.id]] = 1.0
        # influence = start @ (A + A^2 + ...): A is nilpotent (edges go forward), so this ends.
        total, current = torch.zeros(n, dtype=torch.float64), start
        for _ in range(n):
            current = current @ adjacency
            if not current.any():
                break
            total += current
        total[index[self.metric_node.id]] = 1.0
        return {node_id: float(total[index[node_id]]) for node_id in ids}

    def prune_influence(self, fraction: float = 0.8) -> AttributionGraph:
        """Keep the most influential nodes that together hold `fraction` of the total influence."""
        if not 0 < fraction <= 1:
            raise InputError(f"fraction must be in (0, 1], got {fraction}")
        scores = {i: s for i, s in self.influence().items() if self.nodes[i].kind != "logit"}
        total = sum(scores.values())
        keep: set[str] = set()
        running = 0.0
        for node_id, score in sorted(scores.items(), key=lambda kv: -kv[1]):
            if total > 0 and running >= fraction * total:
                break
            keep.add(node_id)
            running += score
        return self.subgraph(keep)

    # ----------------------------------------------------------------------- persistence
    def to_record(self) -> GraphRecord:
        """The typed JSON record."""
        return GraphRecord(
            method=self.method,
            metric=self.metric,
            settings=self.settings,
            prompts=self.prompts,
            nodes=list(self.nodes.values()),
            edges=[EdgeRecord(source=s, target=t, weight=w) for (s, t), w in self.edges.items()],
        )

    def to_json(self) -> str:
        """The graph as a JSON string (see `feature_lens.graph.schema`)."""
        return self.to_record().model_dump_json(indent=1)

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the JSON atomically (temp file + rename); refuse to overwrite unless asked."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(self.to_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_record(cls, record: GraphRecord) -> AttributionGraph:
        """Inverse of `to_record`."""
        return cls(
            record.method,
            record.metric,
            {n.id: n for n in record.nodes},
            {(e.source, e.target): e.weight for e in record.edges},
            record.settings,
            record.prompts,
        )

    @classmethod
    def load(cls, path: str | Path) -> AttributionGraph:
        """Read a graph written by `save` (validated against the schema)."""
        try:
            record = GraphRecord.model_validate(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise LoadingError(f"no graph file at {str(path)!r}") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise LoadingError(f"{str(path)!r} is not a feature-lens graph: {error}") from None
        return cls.from_record(record)
