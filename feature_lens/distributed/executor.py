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
    from feature_lens.dashboard.corpus_pass import CorpusStats
    from feature_lens.lens import Lens


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

    def corpus_pass(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
    ) -> Iterator[CorpusStats]:
        """The dashboards' corpus pass (`feature_lens.dashboard.corpus_pass.pass_chunk`) over each
        `(start, stop)` prompt range of `tokens`, in the order of `chunks`."""
        ...


class LocalExecutor:
    """Every chunk in this process, one after the other, with `lens`."""

    def __init__(self, lens: Lens) -> None:
        self.lens = lens

    def corpus_pass(
        self,
        tokens: Tensor,
        lengths: Tensor,
        chunks: Sequence[tuple[int, int]],
        batch_size: int,
    ) -> Iterator[CorpusStats]:
        """See `Executor.corpus_pass`."""
        from feature_lens.dashboard.corpus_pass import pass_chunk

        for start, stop in chunks:
            yield pass_chunk(
                self.lens,
                tokens[start:stop],
                lengths[start:stop],
                offset=start,
                batch_size=batch_size,
            )
