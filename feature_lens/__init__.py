"""feature-lens: how SAE features connect across layers, measured three ways, shown as dashboards.

The public API is re-exported here; everything else may change between versions.
"""

from typing import TYPE_CHECKING

from feature_lens.errors import (
    FeatureLensError,
    IncompatibleDictionaryError,
    InputError,
    LoadingError,
    OfflineError,
    OutputExistsError,
)

if TYPE_CHECKING:
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
    from feature_lens.graph import AttributionGraph, Node
    from feature_lens.lens import Dictionary, Directions, Lens, LensRun
    from feature_lens.loading import load_model, load_sae
    from feature_lens.steering import steer

# Imported on first use (PEP 562): torch and TransformerLens take seconds to import, and the command
# line (`feature-lens --help`, Ctrl-C while it starts) must not wait for them.
_LAZY = {
    "feature_lens.attribution": (
        "CallableMetric LogitDiff LogProb NodeActivation PromptSet attribute faithfulness"
    ),
    "feature_lens.dashboard": "FeatureId build_dashboards",
    "feature_lens.graph": "AttributionGraph Node",
    "feature_lens.lens": "Dictionary Directions Lens LensRun",
    "feature_lens.loading": "load_model load_sae",
    "feature_lens.steering": "steer",
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names.split()}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'feature_lens' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
