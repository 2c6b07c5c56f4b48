"""Loading models and dictionaries, with fast offline failures and clear messages."""

from feature_lens.loading.models import DEFAULT_MODEL_NAMES, load_model
from feature_lens.loading.saes import load_sae

__all__ = ["DEFAULT_MODEL_NAMES", "load_model", "load_sae"]
