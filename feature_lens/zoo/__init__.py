"""The embedded default: a small transformer trained here, with SAEs at every layer.

    from feature_lens.zoo import load_zoo_model, zoo_dictionary_dirs, task_prompts
    model = load_zoo_model()                       # HookedTransformer, tokenizer attached
    dirs = zoo_dictionary_dirs()                   # hook name -> SAE-Lens folder
    pairs = task_prompts("ioi", 64)                # clean/corrupted prompts, answers known

`feature-lens zoo train` rebuilds it from a seed; `feature-lens zoo report` recomputes its metrics.
See docs/zoo.md.
"""

from feature_lens.zoo.corpus import corpus_texts, corpus_tokens
from feature_lens.zoo.loading import default_zoo_dir, load_zoo_model, zoo_dictionary_dirs
from feature_lens.zoo.model import ZOO_MODEL_NAME
from feature_lens.zoo.tasks import TASKS, TaskPrompts, task_prompts

__all__ = [
    "TASKS",
    "ZOO_MODEL_NAME",
    "TaskPrompts",
    "corpus_texts",
    "corpus_tokens",
    "default_zoo_dir",
    "load_zoo_model",
    "task_prompts",
    "zoo_dictionary_dirs",
]
