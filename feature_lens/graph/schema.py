"""The files of an attribution graph, typed with pydantic (documented in docs/graph-format.md).

Version 2 (written now) is a JSON file of metadata and the node table's identity columns,
    {
      "format": "feature-lens-graph", "version": 2,
      "method": "exact" | "attribution" | "ig" | "direct", "metric": "<metric name>",
      "settings": {...}, "prompts": [[token strings of prompt 0], ...],
      "nodes": {"kind": [...], "site": [...], "pos": [int | null], "index": [int | null],
                "layer": [...], "order": [...], "label": [...], "cluster": [int | null]},
      "tensors": {"file": "<name>.safetensors", "sha256": "<hex>", "n_nodes": n, "n_edges": e,
                  "adjacency": "coo" | "dense"}
    }
beside a safetensors file with the values: `activation` and `effect` (`[n]`, float64) and either
`edge_index` (`[2, e]` int64, target rows then source rows) with `edge_weight` (`[e]`), or a dense
`adjacency` `[n, n]` (`[target, source]`), whichever is smaller.

Version 1 (still read) was one JSON file with a list of node objects and a list of edges.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

GRAPH_FORMAT = "feature-lens-graph"
GRAPH_VERSION = 2

Method = Literal["exact", "attribution", "ig", "direct"]
Kind = Literal["feature", "error", "token", "logit"]


class NodeColumns(BaseModel):
    """The node table's identity and placement columns (one entry per node, in row order)."""

    model_config = ConfigDict(extra="forbid")
    kind: list[Kind]
    site: list[str]
    pos: list[NonNegativeInt | None] = Field(description="null = every position")
    index: list[NonNegativeInt | None]
    layer: list[int]
    order: list[int] = Field(description="position of the site in the forward pass")
    label: list[str]
    cluster: list[NonNegativeInt | None]


class TensorFile(BaseModel):
    """Where the graph's tensors are, and how to check they belong to this file."""

    model_config = ConfigDict(extra="forbid")
    file: str
    sha256: str
    n_nodes: NonNegativeInt
    n_edges: NonNegativeInt
    adjacency: Literal["coo", "dense"]


class GraphFile(BaseModel):
    """The JSON half of a version-2 graph."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["feature-lens-graph"] = GRAPH_FORMAT
    version: Literal[2] = GRAPH_VERSION
    method: Method
    metric: str
    settings: dict[str, Any] = Field(default_factory=dict)
    prompts: list[list[str]] = Field(default_factory=list[list[str]])
    nodes: NodeColumns
    tensors: TensorFile


class NodeRecordV1(BaseModel):
    """One node of a version-1 file. `pos` None = all positions; `index` None for error/token/logit."""

    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Kind
    site: str
    layer: int
    order: int
    pos: NonNegativeInt | None = None
    index: NonNegativeInt | None = None
    activation: float = 0.0
    effect: float = 0.0
    label: str = ""
    cluster: NonNegativeInt | None = None


class EdgeRecordV1(BaseModel):
    """A weighted edge of a version-1 file, from `source` to `target` (the file's node ids)."""

    model_config = ConfigDict(extra="forbid")
    source: str
    target: str
    weight: float


class GraphRecordV1(BaseModel):
    """A whole version-1 file."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["feature-lens-graph"] = GRAPH_FORMAT
    version: Literal[1] = 1
    method: Method
    metric: str
    settings: dict[str, Any] = Field(default_factory=dict)
    prompts: list[list[str]] = Field(default_factory=list[list[str]])
    nodes: list[NodeRecordV1]
    edges: list[EdgeRecordV1]
