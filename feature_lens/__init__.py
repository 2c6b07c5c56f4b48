"""feature-lens: how SAE features connect across layers, measured three ways, shown as dashboards.

The public API is re-exported here; everything else may change between versions.
"""

from feature_lens.attribution import (
    CallableMetric,
    LogitDiff,
    LogProb,
    NodeActivation,
    PromptSet,
    attribute,
    faithfulness,
)
from feature_lens.dashboard import FeatureId, build_dashboards
from feature_lens.errors import (
    FeatureLensError,
    IncompatibleDictionaryError,
    InputError,
    LoadingError,
    OfflineError,
    OutputExistsError,
)
from feature_lens.graph import AttributionGraph, Node
from feature_lens.lens import Dictionary, Directions, Lens, LensRun
from feature_lens.loading import load_model, load_sae
from feature_lens.steering import steer

__version__ = "0.2.0"

__all__ = [
    "AttributionGraph",
    "CallableMetric",
    "Dictionary",
    "Directions",
    "FeatureId",
    "FeatureLensError",
    "IncompatibleDictionaryError",
    "InputError",
    "Lens",
    "LensRun",
    "LoadingError",
    "LogProb",
    "LogitDiff",
    "Node",
    "NodeActivation",
    "OfflineError",
    "OutputExistsError",
    "PromptSet",
    "__version__",
    "attribute",
    "build_dashboards",
    "faithfulness",
    "load_model",
    "load_sae",
    "steer",
]
