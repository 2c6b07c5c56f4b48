"""Gather what a feature page shows from a dataset of prompts: top examples and examples from
intervals of the activation range, density and histogram, and each feature's direct logit effect.

One forward over the dataset (`corpus_pass`; feature_lens/dashboard/corpus_pass.py) gives every
feature's density, and, once the features are chosen, their page statistics
(`feature_lens.dashboard.page_stats.FeatureStats`, merged chunk by chunk, of a size that does not
grow with the corpus) and correlation sums; the pages are built from those (`page_data`).
`densities` and `feature_activations` are the same quantities from passes of their own (for one
feature at a time, as the explorer asks; `summarise` turns dense activations into the same page
data). Prompts may have
different lengths: they are right-padded, and padded positions are masked out of every statistic
(the model is causal, so padding on the right changes nothing at earlier positions).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.dashboard.page_stats import Candidate, FeatureStats, PageSpec, stats_of
from feature_lens.dashboard.tables import FeatureTables, Moments
from feature_lens.errors import InputError
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import Lens, RunPlan
from feature_lens.typed import int_list

if TYPE_CHECKING:
    from feature_lens.distributed.executor import Executor


def feature_index(feature: Node) -> int:
    """The dictionary index of a dashboard feature: a feature node at every position
    (`feature_lens.graph.node.feature(site, index)`); anything else is refused."""
    if feature.kind != "feature" or feature.index is None or feature.pos is not None:
        raise InputError(
            f"dashboards show features at every position, got {feature.id}; "
            "pass feature(site, index) or SITE:INDEX"
        )
    return feature.index


def feature_label(feature: Node) -> str:
    """Human-readable name of a dashboard feature, e.g. `blocks.1.hook_resid_post:123`."""
    return f"{feature.site}:{feature_index(feature)}"


def feature_slug(feature: Node) -> str:
    """File-name-safe name of a dashboard feature, e.g. `blocks.1.hook_resid_post-123` (its page is
    `features/<slug>.html`)."""
    safe = "".join(c if c.isalnum() or c in "._" else "_" for c in feature.site)
    return f"{safe}-{feature_index(feature)}"


def parse_feature(text: str) -> Node:
    """The feature named by user input `SITE:INDEX` (as written by `feature_label`)."""
    site, _, index = text.rpartition(":")
    if not site or not index.lstrip("-").isdigit():
        raise InputError(
            f"feature {text!r} is not of the form SITE:INDEX, e.g. blocks.0.hook_resid_post:12"
        )
    return feature_node(site, int(index))


def FeatureId(site: str, index: int) -> Node:
    """Deprecated: a dashboard feature is the feature node `feature_lens.graph.node.feature(site,
    index)` (every position); this returns that node."""
    warnings.warn(
        "FeatureId(site, index) is deprecated; use feature_lens.graph.node.feature(site, index)",
        DeprecationWarning,
        stacklevel=2,
    )
    return feature_node(site, index)


class TokenStrings(Sequence[list[str]]):
    """Each prompt's tokens as strings, made when asked for from the token ids and a table of the
    vocabulary (so a corpus of any size costs one table, not a string per token)."""

    def __init__(self, tokens: Tensor, lengths: Tensor, vocab: Sequence[str]) -> None:
        self._tokens, self._lengths, self._vocab = tokens, lengths, vocab

    def __len__(self) -> int:
        return int(self._tokens.shape[0])

    @overload
    def __getitem__(self, index: int) -> list[str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...
    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self._tokens[index, : int(self._lengths[index])]
        return [self._vocab[t] for t in int_list(row)]


@dataclass
class Dataset:
    """Prompts as right-padded token ids `[n, pos]`, their lengths `[n]` and token strings
    (`str_tokens[i]`: prompt i's real tokens)."""

    tokens: Int[Tensor, "n pos"]
    lengths: Int[Tensor, " n"]
    str_tokens: Sequence[list[str]]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def mask(self) -> Bool[Tensor, "n pos"]:
        """True at real (not padded) positions."""
        return torch.arange(self.tokens.shape[1])[None, :] < self.lengths[:, None]

    @property
    def n_tokens(self) -> int:
        """Real tokens in the dataset."""
        return int(self.lengths.sum())


def token_strings(lens: Lens, row: Tensor) -> list[str]:
    """The tokens of one prompt as strings (ids as text when the model has no tokenizer)."""
    if lens.model.tokenizer is None:
        return [str(int(t)) for t in row]
    return [str(t) for t in lens.model.to_str_tokens(row)]


def prepare_dataset(lens: Lens, prompts: Sequence[str] | Sequence[Tensor] | Tensor) -> Dataset:
    """Tokenize prompts of any lengths (texts or 1-D token ids, each checked by `Lens.to_tokens`)
    and right-pad them."""
    if len(prompts) == 0:
        raise InputError("the dataset of prompts is empty; give at least one prompt")
    if isinstance(prompts, Tensor):
        rows = list(lens.to_tokens(prompts).cpu())
    else:
        rows: list[Tensor] = []
        for i, prompt in enumerate(prompts):
            if isinstance(prompt, str) and not prompt.strip():
                raise InputError(f"prompt {i} is empty")  # its index in the dataset, not 0
            rows.append(lens.to_tokens(prompt)[0].cpu())
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    # to_str_tokens decodes each id on its own, so a table of the vocabulary gives the same strings
    # without a tokenizer call per prompt.
    vocab = token_strings(lens, torch.arange(int(lens.model.cfg.d_vocab)))
    return Dataset(tokens, lengths, TokenStrings(tokens, lengths, vocab))


def feature_activations(
    lens: Lens,
    dataset: Dataset,
    features: Sequence[Node],
    *,
    batch_size: int = 64,
    progress: bool = False,
    moments: Moments | None = None,
) -> dict[Node, Float[Tensor, "n pos"]]:
    """Activations of `features` at every token of the dataset (0 at padded positions), on CPU.
    With `moments`, the same pass accumulates the sums of the feature tables' correlations."""
    for feature in features:
        d_sae = lens.dictionary(feature.site).d_sae
        if not 0 <= feature_index(feature) < d_sae:
            raise InputError(
                f"feature {feature_label(feature)} does not exist: the dictionary at {feature.site!r} has "
                f"{d_sae} features (indices 0..{d_sae - 1})"
            )
    by_site: dict[str, list[int]] = {}
    for feature in features:
        by_site.setdefault(feature.site, []).append(feature_index(feature))
    n, width = dataset.tokens.shape
    out = {site: torch.zeros(len(idx), n, width) for site, idx in by_site.items()}
    mask = dataset.mask
    starts = range(0, n, batch_size)
    records = moments.sites if moments else []
    # The tables correlate features with the dictionary's input (a transcoder's reads differ from
    # its site); sites are names, not hooks ("<hook>:decoder", "<hook>:directions").
    inputs = {site: lens.dictionary(site).hook_in for site in records}
    plan = RunPlan(
        record_hooks=sorted(set(inputs.values())),
        stop_at_layer=lens.stop_layer([*by_site, *records]),
    )
    for start in tqdm(starts, desc="activations", disable=not progress, unit="batch"):
        batch = dataset.tokens[start : start + batch_size].to(lens.device)
        with torch.no_grad():
            result = lens.forward(batch, plan)
        keep = mask[start : start + batch_size]
        if moments is not None:
            for site in moments.sites:
                moments.update(
                    site, result.features[site], result.hooks[inputs[site]], keep.to(lens.device)
                )
        for site, idx in by_site.items():
            acts = result.features[site][..., idx].float().cpu()  # [b, pos, k]
            out[site][:, start : start + batch_size] = acts.permute(2, 0, 1) * keep
    return {
        feature_node(site, i): out[site][k]
        for site, idx in by_site.items()
        for k, i in enumerate(idx)
    }


@dataclass
class CorpusResult:
    """What the corpus pass gives the pages: densities of every feature, the chosen features,
    their page statistics and the sums behind their feature tables."""

    density: dict[str, Tensor]
    features: list[Node]
    stats: dict[Node, FeatureStats]
    moments: Moments


def corpus_pass(
    lens: Lens,
    dataset: Dataset,
    choose: Callable[[dict[str, Tensor]], Sequence[Node]],
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
    executor: Executor | None = None,
    spec: PageSpec | None = None,
) -> CorpusResult:
    """The fused corpus pass (`feature_lens.dashboard.corpus_pass`): one forward per batch gives
    every feature's density; `choose(density)` picks the features; their page statistics (sized
    by `spec`) and correlation sums come from the same forward's kept data. Chunks of the corpus run in this
    process, or on `executor`'s workers (`feature_lens.distributed`); either way they are merged
    in corpus order, so the result is the same to the bit.

    `cache_dir`: keep both steps' results there (the densities under a key of the model, its
    dictionaries and the corpus; the selection under that plus the chosen features), so that a
    second build runs no forward pass (None: no cache)."""
    from feature_lens.dashboard.cache import cached_tensors, corpus_pass_key
    from feature_lens.dashboard.corpus_pass import (
        CorpusSummary,
        Selection,
        SelectionMerger,
        SelectRequest,
        chunk_starts,
        moments,
    )
    from feature_lens.distributed.executor import LocalExecutor

    n, width = dataset.tokens.shape
    if n * width >= 2**31:
        raise InputError(
            f"the corpus is {n} prompts x {width} positions, over 2**31 token slots; "
            "build dashboards over fewer prompts at a time"
        )
    runner = executor if executor is not None else LocalExecutor(lens)
    chunks = chunk_starts(len(dataset))
    lengths = int_list(dataset.lengths)

    def forward() -> dict[str, Tensor]:
        summary = CorpusSummary(0, int(width), 0)
        parts = runner.corpus_forward(dataset.tokens, dataset.lengths, chunks, batch_size)
        for part in tqdm(parts, total=len(chunks), desc="corpus", disable=not progress):
            summary.add(part)
        return summary.state()

    def key_of(request: Mapping[str, object]) -> str:
        # Reading every weight for the key is skipped when nothing is cached.
        return "" if cache_dir is None else corpus_pass_key(lens, dataset.tokens, request)

    key = key_of({"pass": "corpus", "v": 3, "lengths": lengths})
    summary = CorpusSummary.from_state(cached_tensors(cache_dir, key, forward), lens.sites)
    density = summary.densities()
    features = list(choose(density))
    chosen: dict[str, list[int]] = {}
    for feature in features:
        chosen.setdefault(feature.site, []).append(feature_index(feature))
    page = spec if spec is not None else PageSpec()
    select_request = SelectRequest.of(summary, chosen, page)

    def select() -> dict[str, Tensor]:
        merger = SelectionMerger()
        parts = runner.corpus_select(
            dataset.tokens, dataset.lengths, chunks, batch_size, select_request
        )
        for part in tqdm(parts, total=len(chunks), desc="features", disable=not progress):
            merger.add(part)
        return merger.result().state()

    request: dict[str, Any] = {
        "pass": "corpus-selection",
        "v": 3,
        "features": [feature_label(f) for f in features],
        "lengths": lengths,
        "spec": repr(page),
    }
    key = key_of(request)
    try:
        state = cached_tensors(cache_dir, key, select)
    finally:
        runner.corpus_release()
    selection = Selection.from_state(state, select_request)
    stats = {
        feature_node(site, index): s
        for site, indices in selection.chosen.items()
        for index, s in zip(indices, selection.stats[site], strict=True)
    }
    return CorpusResult(
        density, features, {f: stats[f] for f in features}, moments(summary, selection)
    )


def densities(
    lens: Lens, dataset: Dataset, *, batch_size: int = 64, progress: bool = False
) -> dict[str, Float[Tensor, " d_sae"]]:
    """Per site, the fraction of real tokens on which each feature is active (> 0)."""
    counts = {site: torch.zeros(lens.dictionary(site).d_sae) for site in lens.sites}
    mask = dataset.mask
    starts = range(0, len(dataset), batch_size)
    for start in tqdm(starts, desc="densities", disable=not progress, unit="batch"):
        batch = dataset.tokens[start : start + batch_size].to(lens.device)
        with torch.no_grad():
            result = lens.forward(batch, RunPlan(stop_at_layer=lens.stop_layer(lens.sites)))
        keep = mask[start : start + batch_size].to(lens.device)
        for site in lens.sites:
            active = (result.features[site] > 0) & keep[..., None]
            counts[site] += active.sum((0, 1)).float().cpu()
    return {site: c / dataset.n_tokens for site, c in counts.items()}


def top_features(density: dict[str, Tensor], k: int, *, max_density: float = 0.5) -> list[Node]:
    """Per site, the `k` features with the highest density below `max_density` (features that fire
    on most tokens say little; dead features have nothing to show)."""
    if k < 1:
        raise InputError(f"--top-k must be at least 1, got {k}")
    chosen: list[Node] = []
    for site, d in density.items():
        score = torch.where((d > 0) & (d <= max_density), d, -1.0)
        order = torch.argsort(score, descending=True, stable=True)[:k]
        chosen += [feature_node(site, int(i)) for i in order if score[i] > 0]
    return chosen


@dataclass
class Example:
    """One prompt shown on a feature page: a window of tokens around its strongest activation."""

    prompt: int
    pos: int
    value: float
    start: int
    tokens: list[str]
    acts: list[float]


@dataclass
class ExampleGroup:
    """Examples whose maximum activation lies in one interval (`title` says which)."""

    title: str
    examples: list[Example]


@dataclass
class FeatureData:
    """Everything about one feature that comes from the dataset and the weights."""

    feature: Node
    n_tokens: int
    n_active: int
    max_act: float
    hist_edges: list[float]
    hist_counts: list[int]
    groups: list[ExampleGroup]
    top_logits: list[tuple[str, float]] = field(default_factory=list[tuple[str, float]])
    bottom_logits: list[tuple[str, float]] = field(default_factory=list[tuple[str, float]])
    logit_hist_edges: list[float] = field(default_factory=list[float])
    logit_hist_counts: list[int] = field(default_factory=list[int])
    tables: FeatureTables | None = None
    # The 1st..100th percentiles of the positive activations (`FeatureStats.percentiles`).
    percentiles: list[float] = field(default_factory=list[float])
    # The activations over every real token of the strongest prompt (the first top example's).
    strongest: list[float] = field(default_factory=list[float])

    @property
    def density(self) -> float:
        """Fraction of real tokens on which the feature is active."""
        return self.n_active / max(self.n_tokens, 1)


def _example(dataset: Dataset, candidate: Candidate, before: int, after: int) -> Example:
    row = candidate.row
    pos = int(torch.argmax(row))
    start, stop = max(0, pos - before), min(len(row), pos + after + 1)
    return Example(
        prompt=candidate.prompt,
        pos=pos,
        value=float(row[pos]),
        start=start,
        tokens=dataset.str_tokens[candidate.prompt][start:stop],
        acts=[round(float(a), 4) for a in row[start:stop]],
    )


def page_data(
    dataset: Dataset, feature: Node, stats: FeatureStats, *, before: int = 10, after: int = 4
) -> FeatureData:
    """A feature's page from its statistics over `dataset`: the top examples, then the examples
    of each interval of the activation range (highest first), each a window of `before` and
    `after` tokens around the prompt's maximum; the histogram; the percentiles."""
    groups = [
        ExampleGroup("Top activations", [_example(dataset, c, before, after) for c in stats.top])
    ]
    edges = stats.interval_edges()
    picked = stats.interval_groups()
    n_intervals = len(picked)
    for q in range(n_intervals, 0, -1):
        if not picked[q - 1]:
            continue
        title = f"Interval {q}/{n_intervals}: max activation {edges[q - 1]:.3g} to {edges[q]:.3g}"
        groups.append(
            ExampleGroup(title, [_example(dataset, c, before, after) for c in picked[q - 1]])
        )
    return FeatureData(
        feature=feature,
        n_tokens=dataset.n_tokens,
        n_active=stats.n_active,
        max_act=stats.max_act,
        hist_edges=[round(float(e), 5) for e in stats.hist_edges()],
        hist_counts=[int(c) for c in stats.hist],
        groups=groups,
        percentiles=stats.percentiles(),
        strongest=[float(a) for a in stats.top[0].row] if stats.top else [],
    )


def summarise(
    dataset: Dataset,
    feature: Node,
    acts: Float[Tensor, "n pos"],
    *,
    n_top: int = 10,
    n_intervals: int = 4,
    per_interval: int = 4,
    before: int = 10,
    after: int = 4,
    n_bins: int = 24,
    seed: int = 0,
) -> FeatureData:
    """`page_data` from a feature's dense activations over `dataset` (0 at padded positions):
    the `n_top` prompts with the largest maximum, `per_interval` prompts sampled from each of
    `n_intervals` equal-width intervals of the remaining active prompts' maxima, and a histogram
    of the positive activations in `n_bins` bins. The same numbers as the corpus pass's."""
    spec = PageSpec(
        n_top=n_top, n_intervals=n_intervals, per_interval=per_interval, n_bins=n_bins, seed=seed
    )
    stats = stats_of(feature.site, feature_index(feature), acts, dataset.lengths, spec)
    return page_data(dataset, feature, stats, before=before, after=after)


@dataclass
class LogitEffect:
    """A feature's direct logit effect: the `k` most promoted and most suppressed tokens, and a
    histogram of the effect over the whole vocabulary (`hist_counts` sums to d_vocab)."""

    top: list[tuple[str, float]]
    bottom: list[tuple[str, float]]
    hist_edges: list[float]
    hist_counts: list[int]


def logit_histogram(
    effect: Float[Tensor, " d_vocab"], n_bins: int = 32
) -> tuple[list[float], list[int]]:
    """Equal-width bins from the smallest to the largest effect; every token is counted once (the
    last bin includes its upper edge), so the counts sum to `effect.numel()`."""
    low, high = float(effect.min()), float(effect.max())
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = torch.linspace(low, high, n_bins + 1, dtype=torch.float64)
    counts = torch.histogram(effect.double().cpu(), bins=edges).hist.long()
    return [float(e) for e in edges], [int(c) for c in counts]


def logit_effects(
    lens: Lens, features: Sequence[Node], *, k: int = 10, n_bins: int = 32
) -> dict[Node, LogitEffect]:
    """Direct logit effect of each feature: its decoder direction through the final LayerNorm's
    centring and gain (its scale frozen at 1) and the unembedding, `((W_dec[i] - mean) * w) @ W_U`:
    the change in each logit per unit of activation along the direct path. Top and bottom `k`, and
    a histogram over the vocabulary in `n_bins` bins."""
    model = lens.model
    # One call decodes every id on its own (as to_str_tokens does per token), not d_vocab calls.
    vocab = token_strings(lens, torch.arange(int(model.cfg.d_vocab)))
    out: dict[Node, LogitEffect] = {}
    with torch.no_grad():
        for feature in features:
            direction = lens.dictionary(feature.site).W_dec[feature.index].float()
            if model.cfg.normalization_type in ("LN", "LNPre"):
                direction = direction - direction.mean()
            gain = getattr(getattr(model, "ln_final", None), "w", None)
            if isinstance(gain, Tensor):
                direction = direction * gain.float()
            effect = (direction @ model.W_U.float()).cpu()
            top = torch.topk(effect, min(k, effect.numel()))
            bottom = torch.topk(-effect, min(k, effect.numel()))
            edges, counts = logit_histogram(effect, n_bins)
            out[feature] = LogitEffect(
                [(vocab[int(i)], float(v)) for v, i in zip(top.values, top.indices, strict=True)],
                [
                    (vocab[int(i)], -float(v))
                    for v, i in zip(bottom.values, bottom.indices, strict=True)
                ],
                edges,
                counts,
            )
    return out
