"""Engineering Monosemanticity in Toy Models (Jermyn, Schiefer & Hubinger 2022, arXiv 2211.09169).

A clean rebuild of the paper's toy-model sweeps: sparse features embedded into a small space, a
one-hidden-layer model trained to decode them, and the fraction of monosemantic neurons tracked
over training. See ``README.md`` beside this file.
"""

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.metrics import (
    monosemantic_mask,
    monosemanticity_ratio,
    single_feature_activations,
)
from projects.engineering_monosemanticity.model import ToyModel
from projects.engineering_monosemanticity.train import TrainResult, train

__all__ = [
    "RunConfig",
    "ToyModel",
    "TrainResult",
    "monosemantic_mask",
    "monosemanticity_ratio",
    "single_feature_activations",
    "train",
]
