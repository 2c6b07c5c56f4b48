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
    "Dictionary": "feature_lens.lens",
    "Directions": "feature_lens.lens",
    "FeatureId": "feature_lens.dashboard",
    "FeatureLensError": "feature_lens.errors",
    "IncompatibleDictionaryError": "feature_lens.errors",
    "InputError": "feature_lens.errors",
    "Lens": "feature_lens.lens",
    "LensRun": "feature_lens.lens",
    "LoadingError": "feature_lens.errors",
    "OfflineError": "feature_lens.errors",
    "OutputExistsError": "feature_lens.errors",
    "build_dashboards": "feature_lens.dashboard",
    "load_model": "feature_lens.loading",
    "load_sae": "feature_lens.loading",
}

__all__ = [  # the names of _EXPORTS, spelled out for type checkers (a test keeps them equal)
    "Dictionary",
    "Directions",
    "FeatureId",
    "FeatureLensError",
    "IncompatibleDictionaryError",
    "InputError",
    "Lens",
    "LensRun",
    "LoadingError",
    "OfflineError",
    "OutputExistsError",
    "__version__",
    "build_dashboards",
    "load_model",
    "load_sae",
]

if TYPE_CHECKING:
    from feature_lens.dashboard import FeatureId, build_dashboards
    from feature_lens.errors import (
        FeatureLensError,
        IncompatibleDictionaryError,
        InputError,
        LoadingError,
        OfflineError,
        OutputExistsError,
    )
    from feature_lens.lens import Dictionary, Directions, Lens, LensRun
    from feature_lens.loading import load_model, load_sae


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
