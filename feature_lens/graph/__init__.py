"""Attribution graphs: the result type of every method (a node table plus an adjacency tensor),
pruning, the file format and persistence."""

from feature_lens.graph.graph import AttributionGraph, NodesView
from feature_lens.graph.node import METRIC_NODE, Node, NodeKind
from feature_lens.graph.schema import GRAPH_FORMAT, GRAPH_VERSION, GraphFile, GraphRecordV1
from feature_lens.graph.storage import load_graph, save_graph
from feature_lens.graph.table import NodeRecord, NodeTable

__all__ = [
    "GRAPH_FORMAT",
    "GRAPH_VERSION",
    "METRIC_NODE",
    "AttributionGraph",
    "GraphFile",
    "GraphRecordV1",
    "Node",
    "NodeKind",
    "NodeRecord",
    "NodeTable",
    "NodesView",
    "load_graph",
    "save_graph",
]
