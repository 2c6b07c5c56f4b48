# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false, reportUnknownLambdaType=false
# (Ray's actor handles and remote methods are untyped: every call through them is dynamic.)
"""Ray as the executor: a pool of actors, each loading the Lens once from a `LensRecipe`, takes
chunks of a job; at most two chunks per actor are in flight, and results come back in chunk order
(so the driver holds a bounded number of unmerged results).

An actor that dies (its process killed, its node lost) is restarted by Ray, which loads the Lens
again, and the chunk it held is retried (`max_restarts`, `max_task_retries`); chunks are pure
functions of their inputs, so a retried chunk gives the same result.

Importing this module imports Ray; without it the error says how to install it.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor

from feature_lens.distributed.executor import LensRecipe, prompt_chunks
from feature_lens.errors import InputError

if TYPE_CHECKING:
    from feature_lens.attribution.api import AttributionJob
    from feature_lens.attribution.nodes import Node
    from feature_lens.dashboard.corpus_pass import CorpusSummary, Selection, SelectRequest

INSTALL_HINT = "Ray is not installed; pip install 'feature-lens[ray]'"
KILL_ONCE_ENV = "FEATURE_LENS_TEST_KILL_ONCE"
"""Fault tests only: a folder; a worker that can take the file `arm` from it kills its own
process (SIGKILL) at the start of its next chunk, once."""


def import_ray() -> Any:
    """The `ray` module, or an `InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


def _kill_if_armed() -> None:
    folder = os.environ.get(KILL_ONCE_ENV)
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, "arm"), os.path.join(folder, "fired"))
    except OSError:
        return  # not armed, or another worker took it
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


class _Worker:
    """One actor: the Lens, loaded once."""

    def __init__(self, recipe: LensRecipe, threads: int) -> None:
        import torch

        from feature_lens.dashboard.corpus_pass import ChunkStore

        torch.set_num_threads(max(1, threads))
        self.lens = recipe.load()
        self.store = ChunkStore()

    def corpus_forward(
        self, tokens: Tensor, lengths: Tensor, start: int, batch_size: int
    ) -> CorpusSummary:
        _kill_if_armed()
        return self.store.forward(self.lens, tokens, lengths, start, batch_size)

    def corpus_select(
        self,
        tokens: Tensor,
        lengths: Tensor,
        start: int,
        batch_size: int,
        request: SelectRequest,
    ) -> Selection:
        _kill_if_armed()
        return self.store.select(self.lens, tokens, lengths, start, batch_size, request)

    def corpus_release(self) -> None:
        self.store.clear()

    def attribute_nodes(self, job: AttributionJob, start: int, stop: int) -> list[Any]:
        from feature_lens.distributed.executor import node_effects_chunk

        _kill_if_armed()
        return node_effects_chunk(self.lens, job, start, stop)

    def attribute_edges(
        self, job: AttributionJob, kept: list[Node], targets: list[Node], start: int, stop: int
    ) -> list[Any]:
        from feature_lens.distributed.executor import edges_chunk

        _kill_if_armed()
        return edges_chunk(self.lens, job, kept, targets, start, stop)

    def attribute_edges_packed(
        self, job: AttributionJob, nodes: tuple[list[Node], list[Node]], start: int, stop: int
    ) -> list[Any]:
        return self.attribute_edges(job, nodes[0], nodes[1], start, stop)

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """Chunks of the corpus-sized jobs on `workers` Ray actors.

    Args:
        recipe: how each actor loads the Lens.
        address: "auto" starts a local Ray instance (or joins the one `ray start` runs here) , an
            address such as "ray://host:10001" or "host:6379" joins that cluster; None: Ray is
            already initialised.
        workers: actors (each holds the model and dictionaries once).
        cpus_per_worker, gpus_per_worker: what each actor reserves (with GPUs, give the recipe
            `device="cuda"`).
    """

    def __init__(
        self,
        recipe: LensRecipe,
        *,
        address: str | None = "auto",
        workers: int = 2,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
    ) -> None:
        if workers < 1:
            raise InputError(f"--ray-workers must be at least 1, got {workers}")
        if gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker must be >= 0, got {gpus_per_worker}")
        ray = import_ray()
        self._ray = ray
        self._started = False
        if address is not None and not ray.is_initialized():
            init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "auto" and not _cluster_running():
                init["num_cpus"] = max(int(workers * cpus_per_worker), 1)
                init["num_gpus"] = int(workers * gpus_per_worker + 0.999)
            else:
                init["address"] = address
            ray.init(**init)
            self._started = True
        total = ray.cluster_resources()
        for name, each in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)):
            if each > 0 and total.get(name, 0) < workers * each:
                raise InputError(
                    f"the Ray cluster has {total.get(name, 0):g} {name}s, fewer than --ray-workers "
                    f"{workers} x {each:g} per worker; ask for fewer workers or add nodes"
                )
        actor = ray.remote(
            num_cpus=cpus_per_worker,
            num_gpus=gpus_per_worker,
            max_restarts=-1,
            max_task_retries=-1,
            scheduling_strategy="SPREAD",  # one actor per node while nodes last
        )(_Worker)
        threads = max(int(cpus_per_worker), 1)
        self._actors = [actor.remote(recipe, threads) for _ in range(workers)]

    def pids(self) -> list[int]:
        """The actors' process ids (they load the Lens first)."""
        return list(self._ray.get([a.pid.remote() for a in self._actors]))

    def corpus_forward(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
    ) -> Iterator[CorpusSummary]:
        """See `feature_lens.distributed.executor.Executor.corpus_forward` (chunk i goes to
        actor i mod workers, and keeps its data there)."""
        self.corpus_release()
        calls = (
            (
                lambda actor, a=a, b=b: actor.corpus_forward.remote(
                    tokens[a:b].clone(), lengths[a:b].clone(), a, batch_size
                )
            )
            for a, b in chunks
        )
        return self._ordered(calls)

    def corpus_select(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
        request: SelectRequest,
    ) -> Iterator[Selection]:
        """See `...Executor.corpus_select` (each chunk on the actor that keeps its data; one that
        was restarted computes it again)."""
        ref = self._ray.put(request)
        calls = (
            (
                lambda actor, a=a, b=b: actor.corpus_select.remote(
                    tokens[a:b].clone(), lengths[a:b].clone(), a, batch_size, ref
                )
            )
            for a, b in chunks
        )
        return self._ordered(calls)

    def corpus_release(self) -> None:
        """See `...Executor.corpus_release`."""
        self._ray.get([actor.corpus_release.remote() for actor in self._actors])

    def attribute_nodes(self, job: AttributionJob) -> Iterator[dict[Node, float]]:
        """See `feature_lens.distributed.executor.Executor.attribute_nodes`."""
        ref = self._ray.put(job)
        calls = (
            (lambda actor, a=a, b=b: actor.attribute_nodes.remote(ref, a, b))
            for a, b in prompt_chunks(len(job.prompts))
        )
        for chunk in self._ordered(calls):
            yield from chunk

    def attribute_edges(
        self, job: AttributionJob, kept: Sequence[Node], targets: Sequence[Node]
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        """See `feature_lens.distributed.executor.Executor.attribute_edges`."""
        ref = self._ray.put(job)
        nodes = self._ray.put((list(kept), list(targets)))
        calls = (
            (lambda actor, a=a, b=b: actor.attribute_edges_packed.remote(ref, nodes, a, b))
            for a, b in prompt_chunks(len(job.prompts))
        )
        for chunk in self._ordered(calls):
            yield from chunk

    def _ordered(self, calls: Iterator[Any]) -> Iterator[Any]:
        """Submit calls round-robin with at most two in flight per actor; yield in order."""
        pending: deque[Any] = deque()
        limit = 2 * len(self._actors)
        for turn, call in enumerate(calls):
            if len(pending) >= limit:
                yield self._ray.get(pending.popleft())
            pending.append(call(self._actors[turn % len(self._actors)]))
        while pending:
            yield self._ray.get(pending.popleft())

    def shutdown(self) -> None:
        """Release the actors, and the Ray instance if this executor started it."""
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _cluster_running() -> bool:
    """Whether `ray start` runs a cluster this machine can join (RAY_ADDRESS, or its address
    file)."""
    if os.environ.get("RAY_ADDRESS"):
        return True
    import tempfile

    return os.path.exists(os.path.join(tempfile.gettempdir(), "ray", "ray_current_cluster"))
