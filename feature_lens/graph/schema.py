"""The JSON format of an attribution graph (typed with pydantic; documented in docs/graph-format.md).

Version 1:
    {
      "format": "feature-lens-graph", "version": 1,
      "method": "exact" | "attribution" | "ig" | "direct",
      "metric": "<metric name>",
      "settings": {...},            # baseline, positions, steps, mlp mode, gradient mode, ...
      "prompts": [[token strings of prompt 0], ...],
      "nodes": [{"id", "kind", "site", "layer", "order", "pos", "index", "activation", "effect"}],
      "edges": [{"source", "target", "weight"}]
    }
`effect` is the node's effect on the metric (see docs/methods.md); an edge's weight is the
source's effect on the target's activation (on the metric when the target is the metric node).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

GRAPH_FORMAT = "feature-lens-graph"
GRAPH_VERSION = 1

Method = Literal["exact", "attribution", "ig", "direct"]


class NodeRecord(BaseModel):
    """One node. `pos` None = all positions at once; `index` None for error/token/logit nodes."""

    model_config = ConfigDict(extra="forbid")
    id: str
    kind: Literal["feature", "error", "token", "logit"]
    site: str
    layer: int
    order: int = Field(description="position of the site in the forward pass; columns of the graph")
    pos: int | None = None
    index: int | None = None
    activation: float = 0.0
    effect: float = 0.0
    label: str = ""
    cluster: int | None = Field(default=None, description="cluster id from feature_lens.clustering")


class EdgeRecord(BaseModel):
    """A weighted edge from `source` to `target` (node ids)."""

    model_config = ConfigDict(extra="forbid")
    source: str
    target: str
    weight: float


class GraphRecord(BaseModel):
    """A whole graph, as saved to JSON."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["feature-lens-graph"] = GRAPH_FORMAT
    version: Literal[1] = GRAPH_VERSION
    method: Method
    metric: str
    settings: dict[str, Any] = Field(default_factory=dict)
    prompts: list[list[str]] = Field(default_factory=list)
    nodes: list[NodeRecord]
    edges: list[EdgeRecord]
