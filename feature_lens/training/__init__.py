"""Training dictionaries (SAEs) on activations, through SAE-Lens's own trainer."""

from feature_lens.training.sae import ARCHITECTURES, train_sae

__all__ = ["ARCHITECTURES", "train_sae"]
