"""The Lens: a model with dictionaries spliced in, and the run plans that drive it."""

from feature_lens.lens.cross_layer import CrossLayerSite, CrossLayerTranscoder, feature_writes
from feature_lens.lens.dictionary import Dictionary, hook_layer
from feature_lens.lens.directions import Directions
from feature_lens.lens.lens import Lens, LensRun, freeze_cache_names
from feature_lens.lens.run import (
    EMBED_SITE,
    Freeze,
    GradientMode,
    RunPlan,
    RunResult,
    SiteEdit,
    frozen_gate,
)

__all__ = [
    "EMBED_SITE",
    "CrossLayerSite",
    "CrossLayerTranscoder",
    "Dictionary",
    "Directions",
    "Freeze",
    "GradientMode",
    "Lens",
    "LensRun",
    "RunPlan",
    "RunResult",
    "SiteEdit",
    "feature_writes",
    "freeze_cache_names",
    "frozen_gate",
    "hook_layer",
]
