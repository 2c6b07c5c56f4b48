"""Exception types. Each message says what was wrong, the offending value, and what to do."""

from __future__ import annotations


class FeatureLensError(Exception):
    """Base class of every error feature-lens raises on purpose."""


class LoadingError(FeatureLensError):
    """A model, tokenizer or dictionary could not be loaded (missing file, corrupt file, bad name)."""


class OfflineError(LoadingError):
    """A hub name was asked for while the machine is offline and the files are not cached."""


class IncompatibleDictionaryError(FeatureLensError):
    """A dictionary does not fit the model: unknown hook, wrong width, other model."""


class InputError(FeatureLensError, ValueError):
    """Bad user input: empty or over-long prompt, unknown site, index out of range, shape mismatch."""


class OutputExistsError(FeatureLensError):
    """An output path exists and overwriting was not asked for."""
