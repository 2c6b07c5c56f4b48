"""The attribution engine: activation patching, attribution patching (and integrated gradients),
and direct attribution, over nodes (features, error terms, tokens) and edges across layers."""

from feature_lens.attribution.api import METHODS, attribute
from feature_lens.attribution.baselines import (
    BaselineKind,
    NodeValues,
    baseline_values,
    node_values,
)
from feature_lens.attribution.direct import (
    clean_freeze,
    direct_edge_matrix,
    direct_edges,
    direct_node_effects,
    source_writes,
)
from feature_lens.attribution.exact import exact_edges, exact_node_effects
from feature_lens.attribution.faithfulness import Faithfulness, circuit_nodes, faithfulness
from feature_lens.attribution.gradients import (
    edge_mask,
    edges_from_matrix,
    gradient_edge_matrix,
    gradient_edges,
    gradient_node_effects,
    integrated_gradient_node_effects,
)
from feature_lens.attribution.metrics import (
    CallableMetric,
    LogitDiff,
    LogProb,
    Metric,
    NodeActivation,
    evaluate,
)
from feature_lens.attribution.nodes import METRIC_NODE, Node, error, feature, token
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import PromptState, candidate_nodes

__all__ = [
    "METHODS",
    "METRIC_NODE",
    "BaselineKind",
    "CallableMetric",
    "Faithfulness",
    "LogProb",
    "LogitDiff",
    "Metric",
    "Node",
    "NodeActivation",
    "NodeValues",
    "PromptSet",
    "PromptState",
    "attribute",
    "baseline_values",
    "candidate_nodes",
    "circuit_nodes",
    "clean_freeze",
    "direct_edge_matrix",
    "direct_edges",
    "direct_node_effects",
    "edge_mask",
    "edges_from_matrix",
    "error",
    "evaluate",
    "exact_edges",
    "exact_node_effects",
    "faithfulness",
    "feature",
    "gradient_edge_matrix",
    "gradient_edges",
    "gradient_node_effects",
    "integrated_gradient_node_effects",
    "node_values",
    "source_writes",
    "token",
]
