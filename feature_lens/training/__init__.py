"""Training dictionaries (SAEs) on activations, through SAE-Lens's own trainer."""

from feature_lens.training.buffer import ActivationBuffer
from feature_lens.training.sae import ARCHITECTURES, train_sae

__all__ = ["ARCHITECTURES", "ActivationBuffer", "train_sae"]
