"""feature-lens: how SAE features connect across layers, measured three ways, shown as dashboards.

The public API is re-exported here; everything else may change between versions. Names are imported
on first use (PEP 562), so `import feature_lens` and `feature-lens --help` do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: public name -> module that defines it (one line each, so export lists merge easily)
_EXPORTS: dict[str, str] = {
    "AttributionGraph": "feature_lens.graph",
    "CallableMetric": "feature_lens.attribution",
    "CrossLayerSite": "feature_lens.lens",
    "CrossLayerTranscoder": "feature_lens.lens",
    "Dictionary": "feature_lens.lens",
    "Directions": "feature_lens.lens",
    "FeatureId": "feature_lens.dashboard",
    "FeatureLensError": "feature_lens.errors",
    "IncompatibleDictionaryError": "feature_lens.errors",
    "InputError": "feature_lens.errors",
    "Lens": "feature_lens.lens",
    "LensRun": "feature_lens.lens",
    "LoadingError": "feature_lens.errors",
    "LogProb": "feature_lens.attribution",
    "LogitDiff": "feature_lens.attribution",
    "Node": "feature_lens.graph",
    "NodeActivation": "feature_lens.attribution",
    "OfflineError": "feature_lens.errors",
    "OutputExistsError": "feature_lens.errors",
    "PromptSet": "feature_lens.attribution",
    "attribute": "feature_lens.attribution",
    "build_dashboards": "feature_lens.dashboard",
    "faithfulness": "feature_lens.attribution",
    "load_model": "feature_lens.loading",
    "load_sae": "feature_lens.loading",
    "steer": "feature_lens.steering",
}

__all__ = [  # the names of _EXPORTS, spelled out for type checkers (a test keeps them equal)
    "AttributionGraph",
    "CallableMetric",
    "CrossLayerSite",
    "CrossLayerTranscoder",
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
    from feature_lens.errors import (
        FeatureLensError,
        IncompatibleDictionaryError,
        InputError,
        LoadingError,
        OfflineError,
        OutputExistsError,
    )
    from feature_lens.graph import AttributionGraph, Node
    from feature_lens.lens import (
        CrossLayerSite,
        CrossLayerTranscoder,
        Dictionary,
        Directions,
        Lens,
        LensRun,
    )
    from feature_lens.loading import load_model, load_sae
    from feature_lens.steering import steer


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'feature_lens' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
