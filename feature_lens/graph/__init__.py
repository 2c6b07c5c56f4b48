"""Attribution graphs: the result type of every method, pruning, JSON schema and persistence."""

from feature_lens.graph.graph import AttributionGraph
from feature_lens.graph.schema import (
    GRAPH_FORMAT,
    GRAPH_VERSION,
    EdgeRecord,
    GraphRecord,
    NodeRecord,
)

__all__ = [
    "GRAPH_FORMAT",
    "GRAPH_VERSION",
    "AttributionGraph",
    "EdgeRecord",
    "GraphRecord",
    "NodeRecord",
]
