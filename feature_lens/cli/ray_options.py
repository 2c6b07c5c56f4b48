"""`--ray`, `--ray-workers`, `--gpus-per-worker`: run a command's corpus-sized job on Ray workers
(docs/scale-out.md). Without `--ray` nothing here imports Ray."""

from __future__ import annotations

import argparse
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from feature_lens.cli.common import positive_int


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of GPUs >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of GPUs >= 0, got {text!r}")
    return value


def add_ray_options(parser: argparse.ArgumentParser, job: str) -> None:
    """The Ray options; `job` names what they distribute (for the help)."""
    group = parser.add_argument_group(f"Ray (optional extra feature-lens[ray]): {job}")
    group.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: 'auto' starts a local Ray instance (or joins the one `ray start` runs "
        "here), an address such as HOST:6379 or ray://HOST:10001 joins that cluster",
    )
    group.add_argument(
        "--ray-workers",
        type=positive_int,
        default=2,
        help="Ray actors, each holding the model and dictionaries once (default 2)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=_gpus,
        default=0,
        help="GPUs each actor reserves (default 0; use with --device cuda)",
    )


def check_ray_options(args: argparse.Namespace) -> None:
    """With `--ray`, fail before the model loads when Ray is not installed."""
    if args.ray is not None:
        from feature_lens.distributed.ray_executor import import_ray

        import_ray()


@contextmanager
def executor_from_args(args: argparse.Namespace) -> Generator[Any]:
    """A `RayExecutor` for `--ray` (shut down on exit), else None."""
    if args.ray is None:
        yield None
        return
    from feature_lens.distributed.executor import LensRecipe
    from feature_lens.distributed.ray_executor import RayExecutor

    executor = RayExecutor(
        LensRecipe.from_args(args),
        address=args.ray,
        workers=args.ray_workers,
        gpus_per_worker=args.gpus_per_worker,
    )
    try:
        yield executor
    finally:
        executor.shutdown()
