"""The interface of an executor: it runs chunks of a corpus-sized job somewhere and hands their
results back in corpus order, so the driver merges them exactly as one process would.

Workers build their own Lens from a `LensRecipe` (the loading options, not tensors), once per
worker; `LocalExecutor` uses the Lens it is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

if TYPE_CHECKING:
    from feature_lens.attribution.api import AttributionJob
    from feature_lens.attribution.nodes import Node
    from feature_lens.dashboard.corpus_pass import CorpusSummary, Selection, SelectRequest
    from feature_lens.lens import Lens

ATTRIBUTION_CHUNK = 8
"""Prompts per chunk of `attribute`'s per-prompt work (results are per prompt, so the chunk size
changes where work runs, not the graph)."""


def prompt_chunks(n: int, chunk: int = ATTRIBUTION_CHUNK) -> list[tuple[int, int]]:
    """`(start, stop)` ranges of `n` prompts, in order."""
    return [(a, min(a + chunk, n)) for a in range(0, n, chunk)]


def node_effects_chunk(
    lens: Lens, job: AttributionJob, start: int, stop: int
) -> list[dict[Node, float]]:
    """Prompts `start:stop` of `job`: each prompt's node effects (`attribute` step 1)."""
    from feature_lens.attribution.api import prompt_node_effects

    states = job.states(lens)
    return [prompt_node_effects(lens, states[i], job) for i in range(start, stop)]


def edges_chunk(
    lens: Lens,
    job: AttributionJob,
    kept: Sequence[Node],
    targets: Sequence[Node],
    start: int,
    stop: int,
) -> list[tuple[Tensor, Tensor | None]]:
    """Prompts `start:stop` of `job`: each prompt's kept-node activations and edge matrix
    (`attribute` step 3)."""
    from feature_lens.attribution.api import prompt_edges
    from feature_lens.attribution.methods import get_method

    states = job.states(lens)
    spec = get_method(job.method)
    return [
        prompt_edges(lens, states[i], kept, targets, spec, job.settings) for i in range(start, stop)
    ]


@dataclass(frozen=True)
class LensRecipe:
    """How to load a Lens: the CLI's loading options (`feature_lens.cli.common.add_lens_options`)
    by their argparse names, e.g. `{"model": "zoo", "sae": None, "device": "cpu"}`. Unset options
    take the CLI's defaults. This is what is shipped to workers."""

    options: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def load(self) -> Lens:
        """Build the Lens (the CLI's `load_lens`)."""
        from feature_lens.cli.common import add_lens_options, load_lens

        parser = argparse.ArgumentParser()
        add_lens_options(parser)
        args = parser.parse_args([])
        for key, value in self.options.items():
            setattr(args, key, value)
        return load_lens(args)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LensRecipe:
        """The loading options of parsed CLI arguments."""
        from feature_lens.cli.common import add_lens_options

        parser = argparse.ArgumentParser()
        add_lens_options(parser)
        names = vars(parser.parse_args([])).keys()
        return cls({name: getattr(args, name) for name in names if hasattr(args, name)})


class Executor(Protocol):
    """Runs chunks of the corpus-sized jobs; results come back in the order of the chunks."""

    def corpus_forward(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
    ) -> Iterator[CorpusSummary]:
        """The forward step of the dashboards' corpus pass
        (`feature_lens.dashboard.corpus_pass`) over each `(start, stop)` prompt range of
        `tokens`: the chunks' sums, in the order of `chunks`; the chunks' data stays with the
        workers for `corpus_select`."""
        ...

    def corpus_select(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
        request: SelectRequest,
    ) -> Iterator[Selection]:
        """The select step for the same chunks: the chosen features' page statistics and
        products (`request`: which features, their maxima, the page sizes), in chunk order."""
        ...

    def corpus_release(self) -> None:
        """Drop the chunk data the workers still keep."""
        ...

    def attribute_nodes(self, job: AttributionJob) -> Iterator[dict[Node, float]]:
        """Each prompt's node effects (`feature_lens.attribution.api.prompt_node_effects`), in
        prompt order."""
        ...

    def attribute_edges(
        self, job: AttributionJob, kept: Sequence[Node], targets: Sequence[Node]
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Each prompt's kept-node activations and edges (`...api.prompt_edges`), in order."""
        ...


class LocalExecutor:
    """Every chunk in this process, one after the other, with `lens`."""

    def __init__(self, lens: Lens) -> None:
        from feature_lens.dashboard.corpus_pass import ChunkStore

        self.lens = lens
        self.store = ChunkStore()

    def corpus_forward(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
    ) -> Iterator[CorpusSummary]:
        """See `Executor.corpus_forward`."""
        self.store.clear()
        for start, stop in chunks:
            yield self.store.forward(
                self.lens, tokens[start:stop], lengths[start:stop], start, batch_size
            )

    def corpus_select(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
        request: SelectRequest,
    ) -> Iterator[Selection]:
        """See `Executor.corpus_select`."""
        for start, stop in chunks:
            yield self.store.select(
                self.lens, tokens[start:stop], lengths[start:stop], start, batch_size, request
            )

    def corpus_release(self) -> None:
        """See `Executor.corpus_release`."""
        self.store.clear()

    def attribute_nodes(self, job: AttributionJob) -> Iterator[dict[Node, float]]:
        """See `Executor.attribute_nodes`."""
        for start, stop in prompt_chunks(len(job.prompts)):
            yield from node_effects_chunk(self.lens, job, start, stop)

    def attribute_edges(
        self, job: AttributionJob, kept: Sequence[Node], targets: Sequence[Node]
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        """See `Executor.attribute_edges`."""
        for start, stop in prompt_chunks(len(job.prompts)):
            yield from edges_chunk(self.lens, job, kept, targets, start, stop)
