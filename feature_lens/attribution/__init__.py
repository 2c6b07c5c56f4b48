"""The attribution engine: activation patching, attribution patching (and integrated gradients),
and direct attribution, over nodes (features, error terms, tokens) and edges across layers.

The user API is `attribute`, `PromptSet`, the metrics, `faithfulness` and the node constructors;
`prompt_states` (`prompt_batch`) and the registry (`register_method`, `get_method`) are the public middle layer.
The per-method kernels (`exact_*`, `gradient_*`, `direct_*`) are exported for tests and
benchmarks that check them against independent computations; they may change between versions.
"""

from feature_lens.attribution.api import METHODS, attribute, metric_values
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
    direct_row_edges,
    source_writes,
)
from feature_lens.attribution.exact import exact_edge_matrix, exact_edges, exact_node_effects
from feature_lens.attribution.faithfulness import Faithfulness, circuit_nodes, faithfulness
from feature_lens.attribution.gradients import (
    edge_mask,
    gradient_edge_matrix,
    gradient_edges,
    gradient_node_effects,
    gradient_row_edges,
    integrated_gradient_node_effects,
)
from feature_lens.attribution.methods import (
    METHOD_REGISTRY,
    AttributionMethod,
    MethodSettings,
    get_method,
    register_method,
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
from feature_lens.attribution.prepare import default_baseline, prompt_batch, prompt_states
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import PromptState, candidate_nodes

__all__ = [
    "METHODS",
    "METHOD_REGISTRY",
    "METRIC_NODE",
    "AttributionMethod",
    "BaselineKind",
    "CallableMetric",
    "Faithfulness",
    "LogProb",
    "LogitDiff",
    "MethodSettings",
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
    "default_baseline",
    "direct_edge_matrix",
    "direct_edges",
    "direct_node_effects",
    "direct_row_edges",
    "edge_mask",
    "error",
    "evaluate",
    "exact_edge_matrix",
    "exact_edges",
    "exact_node_effects",
    "faithfulness",
    "feature",
    "get_method",
    "gradient_edge_matrix",
    "gradient_edges",
    "gradient_node_effects",
    "gradient_row_edges",
    "integrated_gradient_node_effects",
    "metric_values",
    "node_values",
    "prompt_batch",
    "prompt_states",
    "register_method",
    "source_writes",
    "token",
]
