"""Where the corpus-sized jobs run: in this process (`LocalExecutor`) or on Ray workers
(`feature_lens.distributed.ray_executor.RayExecutor`, imported only when asked for; Ray is the
optional extra `feature-lens[ray]`). See docs/scale-out.md."""

from feature_lens.distributed.executor import Executor, LensRecipe, LocalExecutor

__all__ = ["Executor", "LensRecipe", "LocalExecutor"]
