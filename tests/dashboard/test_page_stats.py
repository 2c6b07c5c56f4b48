"""Page statistics merged chunk by chunk equal the statistics of the whole corpus at once, and each
equals its brute-force definition over the dense activations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from feature_lens.dashboard.page_stats import (
    FINE_BINS,
    FeatureStats,
    PageSpec,
    chunk_stats,
    sample_keys,
    stats_of,
)

SPEC = PageSpec(n_top=5, n_intervals=4, per_interval=3, n_bins=24, n_heavy=4, seed=7)


def corpus(n: int = 300, width: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse non-negative activations with ties, dead prompts and padding; some negatives too (a
    direction's projections can be negative)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, width + 1, (n,), generator=g)
    acts = torch.rand(n, width, generator=g) * (torch.rand(n, width, generator=g) < 0.3)
    acts = torch.round(acts * 64) / 64  # many exact ties
    acts[torch.rand(n, generator=g) < 0.1] = 0.0  # prompts where the feature never fires
    acts[5, 1] = -0.25
    mask = torch.arange(width)[None, :] < lengths[:, None]
    return acts * mask, lengths


def merged(acts: torch.Tensor, lengths: torch.Tensor, cuts: list[int]) -> FeatureStats:
    whole = stats_of("blocks.0.hook_resid_post", 3, acts, lengths, SPEC)
    out: FeatureStats | None = None
    for a, b in zip([0, *cuts], [*cuts, len(acts)], strict=True):
        part = chunk_stats(
            "blocks.0.hook_resid_post",
            3,
            acts[a:b],
            lengths[a:b],
            first_prompt=a,
            max_act=whole.max_act,
            spec=SPEC,
        )
        if out is None:
            out = part
        else:
            out.merge(part)
    assert out is not None
    return out


@pytest.mark.parametrize("cuts", [[1], [7, 8, 100, 299], list(range(10, 300, 10))])
def test_any_chunking_gives_the_same_bits(cuts: list[int]) -> None:
    acts, lengths = corpus()
    whole = stats_of("blocks.0.hook_resid_post", 3, acts, lengths, SPEC).state("s")
    parts = merged(acts, lengths, cuts).state("s")
    assert whole.keys() == parts.keys()
    for key, value in whole.items():
        assert torch.equal(value, parts[key]), key


def test_each_statistic_equals_its_definition() -> None:
    acts, lengths = corpus()
    stats = merged(acts, lengths, [50, 51, 200])
    mask = torch.arange(acts.shape[1])[None, :] < lengths[:, None]
    positive = acts[mask][acts[mask] > 0]
    maxima, totals = acts.max(1).values, acts.sum(1)
    assert stats.max_act == float(positive.max())
    assert stats.n_active == positive.numel()
    assert torch.equal(stats.hist, torch.histc(positive, 24, 0, float(positive.max())).long())
    # Top: sorted by maximum, ties by prompt index, with each prompt's row over its real tokens.
    order = sorted(range(len(acts)), key=lambda p: (-float(maxima[p]), p))
    assert [c.prompt for c in stats.top] == order[:5]
    for c in stats.top:
        assert c.score == float(maxima[c.prompt])
        assert torch.equal(c.row, acts[c.prompt, : int(lengths[c.prompt])])
    heavy = sorted((p for p in range(len(acts)) if totals[p] > 0), key=lambda p: -float(totals[p]))
    assert stats.strongest_prompts() == heavy[:4]
    # Intervals: members are the active prompts outside the top whose maximum lies in the
    # interval; the sample is the members with the smallest keys.
    keys = sample_keys(torch.arange(len(acts)), "blocks.0.hook_resid_post", 3, SPEC.seed)
    edges = stats.interval_edges()
    top = set(order[:5])
    for q, picked in enumerate(stats.interval_groups()):
        last = q == len(edges) - 2
        members = [
            p
            for p in range(len(acts))
            if p not in top
            and maxima[p] > 0
            and edges[q] <= maxima[p]
            and (maxima[p] <= edges[q + 1] if last else maxima[p] < edges[q + 1])
        ]
        sample = sorted(members, key=lambda p: (int(keys[p]), p))[:3]
        assert sorted(c.prompt for c in picked) == sorted(sample)
        assert [c.score for c in picked] == sorted((c.score for c in picked), reverse=True)


def test_percentiles_are_within_half_a_fine_bin() -> None:
    g = torch.Generator().manual_seed(3)
    acts = torch.rand(400, 16, generator=g).pow(3) * 7.0  # skewed, like real activations
    lengths = torch.full((400,), 16)
    stats = merged(acts, lengths, [100, 333])
    positive = acts[acts > 0].double().numpy()
    exact = np.percentile(positive, np.arange(1, 101), method="linear")
    bound = stats.max_act / (2 * FINE_BINS)
    got = np.array(stats.percentiles())
    assert np.abs(got - exact).max() <= bound * 1.001
    assert got[-1] == positive.max()  # the 100th percentile is the exact maximum
    assert np.abs(got - exact).max() > 0  # a sketch, not the sorted values


def test_a_feature_that_never_fires() -> None:
    acts, lengths = torch.zeros(20, 5), torch.full((20,), 5)
    stats = merged(acts, lengths, [10])
    assert stats.n_active == 0
    assert stats.max_act == 0.0
    assert stats.top == []
    assert stats.heavy == []
    assert stats.percentiles() == []
    assert all(not g for g in stats.interval_groups())


def test_state_round_trip() -> None:
    acts, lengths = corpus(seed=4)
    stats = merged(acts, lengths, [30, 90])
    back = FeatureStats.from_state(stats.state("x"), "x", stats.site, stats.index, SPEC)
    for key, value in stats.state("x").items():
        assert torch.equal(value, back.state("x")[key]), key


def test_keys_look_uniform_and_depend_on_the_feature() -> None:
    prompts = torch.arange(20_000)
    a = sample_keys(prompts, "s", 1, 0)
    b = sample_keys(prompts, "s", 2, 0)
    assert not torch.equal(a, b)
    assert torch.equal(a[5000:6000], sample_keys(prompts[5000:6000], "s", 1, 0))
    below = (a < 2**30).double().mean()  # half the range of [0, 2**31 - 1)
    assert abs(float(below) - 0.5) < 0.02
    # Rank correlation with the index is small: the sample is not the first prompts.
    ranks = torch.argsort(torch.argsort(a)).double()
    r = torch.corrcoef(torch.stack([ranks, prompts.double()]))[0, 1]
    assert abs(float(r)) < 0.05


def test_sizes_do_not_grow_with_the_corpus() -> None:
    """What the driver keeps per feature is bounded by the page sizes, not the corpus: ten times
    the prompts, merged over ten times the chunks, hold no more (the fine histogram at most
    `fine_bins` counts)."""

    def held(n: int) -> int:
        acts, lengths = corpus(n=n, seed=5)
        stats = merged(acts, lengths, list(range(25, n, 25)))
        rows = sum(len(c.row) for c in stats.top) + sum(
            len(c.row) for group in stats.samples for _, c in group
        )
        assert len(stats.top) <= SPEC.n_top
        assert len(stats.heavy) <= SPEC.n_heavy
        assert all(len(g) <= SPEC.per_interval + SPEC.n_top for g in stats.samples)
        assert len(stats.fine()[0]) <= SPEC.fine_bins
        return rows

    width = 12
    bound = width * (SPEC.n_top + SPEC.n_intervals * (SPEC.per_interval + SPEC.n_top))
    assert held(300) <= bound
    assert held(3000) <= bound
