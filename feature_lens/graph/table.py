"""The node table of an attribution graph: one row per node, one column per field.

Identity columns (`kind`, `site`, `pos`, `index`) say which `Node` a row is; `layer` and `order`
place it in the forward pass (columns of the graph view); `activation` and `effect` are its values
(means over prompts); `label` and `cluster` are annotations. Numeric columns are tensors, so
selecting rows (pruning, subgraphs) is one `index_select` per column; the site column holds codes
into the table's `sites` vocabulary. `NodeRecord` is the read-only view of one row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from jaxtyping import Bool, Float, Float64, Int, Int64
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.graph.node import NODE_KINDS, Node, NodeKind
from feature_lens.typed import int_list

_KIND_CODE = {kind: code for code, kind in enumerate(NODE_KINDS)}
NO_VALUE = -1
"""Stored in `pos` for an all-positions node, in `index` for a node without one, in `cluster` for
a node outside every cluster."""


@dataclass(frozen=True)
class NodeRecord:
    """One row of a node table: the node's identity and its values (a read-only view)."""

    node: Node
    layer: int = 0
    order: int = 0
    activation: float = 0.0
    effect: float = 0.0
    label: str = ""
    cluster: int | None = None

    @property
    def id(self) -> str:
        """The node's id (derived from its fields)."""
        return self.node.id

    @property
    def kind(self) -> NodeKind:
        """feature / error / token / logit."""
        return self.node.kind

    @property
    def site(self) -> str:
        """The node's site (`"embed"` for tokens, `"metric"` for the metric)."""
        return self.node.site

    @property
    def pos(self) -> int | None:
        """Its position, None for every position."""
        return self.node.pos

    @property
    def index(self) -> int | None:
        """The feature index (None for error, token and metric nodes)."""
        return self.node.index

    def replace(self, **changes: object) -> NodeRecord:
        """A copy with some values changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """Plain fields, including the id (networkx attributes, JSON-friendly)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "site": self.site,
            "pos": self.pos,
            "index": self.index,
            "layer": self.layer,
            "order": self.order,
            "activation": self.activation,
            "effect": self.effect,
            "label": self.label,
            "cluster": self.cluster,
        }


def _long(values: Iterable[int], n: int) -> Int64[Tensor, " n"]:
    out = torch.tensor(list(values), dtype=torch.int64)
    return out if out.numel() == n else out.reshape(n)


@dataclass(frozen=True, eq=False)
class NodeTable:
    """Columns of the node table (see the module docstring). Rows are numbered from 0; the graph's
    adjacency is indexed by these row numbers."""

    sites: tuple[str, ...]
    kind: Int64[Tensor, " n"]
    site: Int64[Tensor, " n"]
    pos: Int64[Tensor, " n"]
    index: Int64[Tensor, " n"]
    layer: Int64[Tensor, " n"]
    order: Int64[Tensor, " n"]
    activation: Float64[Tensor, " n"]
    effect: Float64[Tensor, " n"]
    cluster: Int64[Tensor, " n"]
    label: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.label)
        for name in ("kind", "site", "pos", "index", "layer", "order", "activation", "effect"):
            column: Tensor = getattr(self, name)
            if column.shape != (n,):
                raise InputError(
                    f"node column {name!r} has shape {tuple(column.shape)}, not ({n},)"
                )
        if self.cluster.shape != (n,):
            raise InputError(f"node column 'cluster' has shape {tuple(self.cluster.shape)}")

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[Node],
        *,
        layer: Sequence[int] | Int[Tensor, " n"],
        order: Sequence[int] | Int[Tensor, " n"],
        activation: Sequence[float] | Float[Tensor, " n"] | None = None,
        effect: Sequence[float] | Float[Tensor, " n"] | None = None,
        label: Sequence[str] | None = None,
        cluster: Sequence[int | None] | None = None,
    ) -> NodeTable:
        """A table of `nodes` with the given columns (activation/effect default to 0)."""
        n = len(nodes)
        sites = tuple(dict.fromkeys(node.site for node in nodes))
        code = {site: i for i, site in enumerate(sites)}

        def floats(values: Sequence[float] | Float[Tensor, " n"] | None) -> Float64[Tensor, " n"]:
            if values is None:
                return torch.zeros(n, dtype=torch.float64)
            return torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(n)

        return cls(
            sites=sites,
            kind=_long((_KIND_CODE[node.kind] for node in nodes), n),
            site=_long((code[node.site] for node in nodes), n),
            pos=_long((NO_VALUE if node.pos is None else node.pos for node in nodes), n),
            index=_long((NO_VALUE if node.index is None else node.index for node in nodes), n),
            layer=torch.as_tensor(layer, dtype=torch.int64).cpu().reshape(n),
            order=torch.as_tensor(order, dtype=torch.int64).cpu().reshape(n),
            activation=floats(activation),
            effect=floats(effect),
            cluster=_long((NO_VALUE if c is None else c for c in (cluster or [None] * n)), n),
            label=tuple(label) if label is not None else ("",) * n,
        )

    @classmethod
    def from_records(cls, records: Sequence[NodeRecord]) -> NodeTable:
        """A table with one row per record."""
        return cls.from_nodes(
            [r.node for r in records],
            layer=[r.layer for r in records],
            order=[r.order for r in records],
            activation=[r.activation for r in records],
            effect=[r.effect for r in records],
            label=[r.label for r in records],
            cluster=[r.cluster for r in records],
        )

    @cached_property
    def nodes(self) -> tuple[Node, ...]:
        """Each row's `Node` (built once, on first use)."""
        kinds: list[NodeKind] = [NODE_KINDS[k] for k in int_list(self.kind)]
        sites = [self.sites[s] for s in int_list(self.site)]
        return tuple(
            Node(kind, site, None if p < 0 else p, None if i < 0 else i)
            for kind, site, p, i in zip(
                kinds, sites, int_list(self.pos), int_list(self.index), strict=True
            )
        )

    @cached_property
    def ids(self) -> tuple[str, ...]:
        """Each row's id."""
        return tuple(node.id for node in self.nodes)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Row number of each id."""
        return {node_id: row for row, node_id in enumerate(self.ids)}

    def is_kind(self, kind: NodeKind) -> Bool[Tensor, " n"]:
        """Boolean mask of the rows of one kind."""
        return self.kind == _KIND_CODE[kind]

    def record(self, row: int) -> NodeRecord:
        """Row `row` as a `NodeRecord`."""
        cluster = int(self.cluster[row])
        return NodeRecord(
            self.nodes[row],
            layer=int(self.layer[row]),
            order=int(self.order[row]),
            activation=float(self.activation[row]),
            effect=float(self.effect[row]),
            label=self.label[row],
            cluster=None if cluster < 0 else cluster,
        )

    def select(self, rows: Int64[Tensor, " m"]) -> NodeTable:
        """The rows `rows`, in that order."""
        picked = int_list(rows)
        return dataclasses.replace(
            self,
            kind=self.kind[rows],
            site=self.site[rows],
            pos=self.pos[rows],
            index=self.index[rows],
            layer=self.layer[rows],
            order=self.order[rows],
            activation=self.activation[rows],
            effect=self.effect[rows],
            cluster=self.cluster[rows],
            label=tuple(self.label[r] for r in picked),
        )

    def with_columns(self, **columns: Tensor | Sequence[str]) -> NodeTable:
        """A copy with some value columns replaced (`activation`, `effect`, `layer`, `order`,
        `cluster`, `label`); identity columns cannot change."""
        allowed = {"activation", "effect", "layer", "order", "cluster", "label"}
        unknown = set(columns) - allowed
        if unknown:
            raise InputError(
                f"cannot replace node columns {sorted(unknown)}; only {sorted(allowed)}"
            )
        changes: dict[str, object] = {}
        for name, values in columns.items():
            if name == "label":
                changes[name] = tuple(str(v) for v in values)
            else:
                dtype = torch.float64 if name in ("activation", "effect") else torch.int64
                changes[name] = torch.as_tensor(values, dtype=dtype).cpu().reshape(len(self))
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
