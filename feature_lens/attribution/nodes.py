"""Nodes of an attribution graph (the identity lives in `feature_lens.graph.node`; re-exported here
because the attribution engine and its users name nodes from this module)."""

from feature_lens.graph.node import (
    CLUSTER_SITE,
    METRIC_NODE,
    METRIC_SITE,
    NODE_KINDS,
    Node,
    NodeKind,
    cluster,
    error,
    feature,
    token,
)

__all__ = [
    "CLUSTER_SITE",
    "METRIC_NODE",
    "METRIC_SITE",
    "NODE_KINDS",
    "Node",
    "NodeKind",
    "cluster",
    "error",
    "feature",
    "token",
]
