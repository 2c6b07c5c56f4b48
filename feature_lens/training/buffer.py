"""A shuffling buffer of model activations, for training dictionaries on a stream of tokens.

`ActivationBuffer` runs a TransformerLens model over token batches from any iterator, keeps the
activations at the requested hooks (one row per token position), and hands out shuffled minibatches.
Rows are served without replacement: each row activation is handed out at most once. When fewer
than half of `capacity` rows remain, it refills from the token stream (to at least `capacity`
rows) and reshuffles the remainder together with the new rows, so consecutive minibatches mix
tokens from many contexts. All hooks share one row order, so row `i` of each hook's minibatch
comes from the same token.

Bookkeeping, always: `rows_added == rows_served + rows_stored`, `rows_served == batch_size *
batches_served`, and `tokens_seen` counts every token run through the model (BOS included).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.lens.dictionary import stop_layer_for


class ActivationBuffer:
    """Shuffled minibatches of activations at `hook_names`, gathered by running `model`.

    Args:
        model: a `HookedTransformer` (anything with `run_with_cache(tokens, names_filter=...)`).
        token_batches: iterator of token id batches `[batch, seq]`; the buffer stops when it ends.
        hook_names: TransformerLens hook names, e.g. `blocks.1.hook_resid_post`.
        capacity: rows kept after a refill (at least; a refill adds whole token batches).
        batch_size: rows per minibatch handed out.
        skip_first: token positions skipped at the start of every sequence (1 drops BOS, whose
            activation is a constant outlier).
        seed: seeds the shuffling.
        device, dtype: where and how the stored rows live (default: the model's device, float32).
    """

    def __init__(
        self,
        model: Any,
        token_batches: Iterator[Int[Tensor, "batch seq"]],
        hook_names: Sequence[str],
        *,
        capacity: int,
        batch_size: int,
        skip_first: int = 1,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not hook_names:
            raise ValueError("hook_names is empty; name at least one hook to collect")
        if batch_size < 1 or capacity < 2 * batch_size:
            raise ValueError(
                f"need batch_size >= 1 and capacity >= 2 * batch_size, "
                f"got capacity={capacity}, batch_size={batch_size}"
            )
        self.model = model
        self.token_batches = token_batches
        self.hook_names: tuple[str, ...] = tuple(hook_names)
        self.capacity = capacity
        self.batch_size = batch_size
        self.skip_first = skip_first
        self.device = torch.device(device if device is not None else model.cfg.device)
        self.dtype = dtype
        self._generator = torch.Generator().manual_seed(seed)
        self._stop_at_layer = stop_layer_for(self.hook_names, int(model.cfg.n_layers))
        self._store: dict[str, Tensor] = {}
        self._exhausted = False
        self.tokens_seen = 0
        self.rows_added = 0
        self.batches_served = 0
        self.refills = 0

    @property
    def rows_stored(self) -> int:
        """Rows waiting to be served."""
        return 0 if not self._store else next(iter(self._store.values())).shape[0]

    @property
    def rows_served(self) -> int:
        """Rows handed out so far."""
        return self.batches_served * self.batch_size

    @torch.no_grad()
    def _activations(self, tokens: Int[Tensor, "batch seq"]) -> dict[str, Tensor]:
        """Activations `[batch * (seq - skip_first), d]` of one token batch at every hook."""
        names = set(self.hook_names)

        def wanted(name: str) -> bool:
            return name in names

        _, cache = self.model.run_with_cache(
            tokens.to(self.model.cfg.device),
            names_filter=wanted,
            stop_at_layer=self._stop_at_layer,
        )
        self.tokens_seen += tokens.numel()
        out: dict[str, Tensor] = {}
        for name in self.hook_names:
            acts = cache[name][:, self.skip_first :]
            out[name] = acts.reshape(-1, acts.shape[-1]).to(self.device, self.dtype)
        return out

    def refill(self) -> None:
        """Run the model until at least `capacity` rows are stored, then shuffle all stored rows."""
        parts: dict[str, list[Tensor]] = {name: [] for name in self.hook_names}
        if self._store:
            for name in self.hook_names:
                parts[name].append(self._store[name])
        stored = self.rows_stored
        while stored < self.capacity:
            tokens = next(self.token_batches, None)
            if tokens is None:
                self._exhausted = True
                break
            new = self._activations(tokens)
            for name in self.hook_names:
                parts[name].append(new[name])
            added = new[self.hook_names[0]].shape[0]
            stored += added
            self.rows_added += added
        if stored == 0:
            self._store = {}
            return
        order = torch.randperm(stored, generator=self._generator).to(self.device)
        self._store = {name: torch.cat(parts[name])[order] for name in self.hook_names}
        self.refills += 1

    def next_batch(self) -> dict[str, Float[Tensor, "batch_size d"]]:
        """The next minibatch: hook name -> `[batch_size, d]` rows; `StopIteration` at the end."""
        if self.rows_stored < self.capacity // 2 and not self._exhausted:
            self.refill()
        if self.rows_stored < self.batch_size:
            raise StopIteration
        batch = {name: rows[: self.batch_size] for name, rows in self._store.items()}
        self._store = {name: rows[self.batch_size :] for name, rows in self._store.items()}
        self.batches_served += 1
        return batch

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        return self

    def __next__(self) -> dict[str, Tensor]:
        return self.next_batch()

    def take(self, n_rows: int) -> dict[str, Float[Tensor, "n_rows d"]]:
        """Gather `n_rows` rows (rounded up to whole minibatches, then cut) per hook."""
        chunks: dict[str, list[Tensor]] = {name: [] for name in self.hook_names}
        got = 0
        while got < n_rows:
            batch = self.next_batch()
            for name in self.hook_names:
                chunks[name].append(batch[name])
            got += self.batch_size
        return {name: torch.cat(parts)[:n_rows] for name, parts in chunks.items()}
