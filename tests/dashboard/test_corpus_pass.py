"""The fused corpus pass against an independent recomputation: each prompt run on its own through
the plain TransformerLens model (`run_with_cache`, no padding, no Lens), every dictionary's own
`encode` on the cached input, and densities, examples and Pearson correlations computed from
the full `[tokens, d_sae]` matrices. Also: recomputing chunks that were not kept changes no bit,
and the old separate passes agree with it."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.dashboard import corpus_pass as corpus_module
from feature_lens.dashboard.data import (
    CorpusResult,
    Dataset,
    corpus_pass,
    densities,
    feature_activations,
    prepare_dataset,
)
from feature_lens.dashboard.page_stats import PageSpec, stats_of
from feature_lens.dashboard.tables import Moments
from feature_lens.distributed import LocalExecutor
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node


def _reference(lens: Lens, dataset: Dataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per site: features `[tokens, d_sae]` and inputs `[tokens, d_in]` over all real tokens."""
    feats: dict[str, list[torch.Tensor]] = {s: [] for s in lens.sites}
    inputs: dict[str, list[torch.Tensor]] = {s: [] for s in lens.sites}
    for row, length in zip(dataset.tokens, dataset.lengths, strict=True):
        with torch.no_grad():
            _, cache = lens.model.run_with_cache(row[: int(length)][None])
            for site in lens.sites:
                d = lens.dictionary(site)
                feats[site].append(d.encode(cache[d.hook_in][0]).double())
                inputs[site].append(cache[d.hook_in][0].double())
    return {s: (torch.cat(feats[s]), torch.cat(inputs[s])) for s in lens.sites}


def _two_per_site(density: dict[str, torch.Tensor]) -> list[Node]:
    """The densest feature of each site and one a third of the way down."""
    out: list[Node] = []
    for site, d in density.items():
        order = torch.argsort(d, descending=True, stable=True)
        out += [feature_node(site, int(order[0])), feature_node(site, int(order[len(order) // 3]))]
    return out


def _flat(result: CorpusResult) -> dict[str, torch.Tensor]:
    out = {f"density/{k}": v for k, v in result.density.items()}
    for f, stats in result.stats.items():
        out |= {f"stats/{k}": v for k, v in stats.state(f.id).items()}
    out |= {f"m/{k}": v for k, v in result.moments.state().items()}
    return out


def test_fused_pass_equals_plain_hooks(dash_lens: Lens, prompts: list[str]) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    result = corpus_pass(dash_lens, dataset, _two_per_site, batch_size=7)
    reference = _reference(dash_lens, dataset)
    mask = dataset.mask
    for site, (f, x) in reference.items():
        torch.testing.assert_close(result.density[site].double(), (f > 0).double().mean(0))
        chosen = [n.index for n in result.features if n.site == site]
        assert len(chosen) == 2
        for index in chosen:
            assert index is not None
            stats = result.stats[feature_node(site, index)]
            acts = torch.zeros(mask.shape, dtype=torch.float64)
            acts[mask] = f[:, index]
            positive = f[:, index][f[:, index] > 0]
            assert stats.n_active == positive.numel()
            assert stats.max_act == pytest.approx(float(positive.max()), abs=1e-5)
            for c in stats.top:  # each example's row against the plain hooks' activations
                torch.testing.assert_close(
                    c.row.double(),
                    acts[c.prompt, : int(dataset.lengths[c.prompt])],
                    atol=1e-5,
                    rtol=1e-5,
                )
        # Pearson r of the chosen features with every feature and input dimension.
        got, r = result.moments.correlations(site)
        assert got == chosen
        rows = torch.cat([f, x], 1)
        b = rows - rows.mean(0)
        live = b.norm(dim=0) > 1e-4  # constant columns: r is 0 by convention on both sides
        for k, index in enumerate(chosen):
            assert index is not None
            a = f[:, index] - f[:, index].mean()
            denom = a.norm() * b.norm(dim=0)
            expect = torch.where(denom > 1e-9, (a @ b) / denom.clamp_min(1e-300), 0.0)
            torch.testing.assert_close(r[k][live], expect[live], atol=1e-4, rtol=1e-4)


def test_chunks_and_recomputed_chunks_change_no_bit(
    dash_lens: Lens, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    whole = _flat(corpus_pass(dash_lens, dataset, _two_per_site, batch_size=8))
    assert len(corpus_module.chunk_starts(len(dataset))) == 1
    monkeypatch.setattr(
        corpus_module,
        "chunk_starts",
        lambda n, chunk=16: [(a, min(a + chunk, n)) for a in range(0, n, chunk)],
    )
    calls: list[int] = []
    original = corpus_module.pass_chunk

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(int(kwargs["offset"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(corpus_module, "pass_chunk", counted)
    chunked = _flat(corpus_pass(dash_lens, dataset, _two_per_site, batch_size=8))
    assert calls == [0, 16, 32]  # one forward per chunk: the select step reuses the kept data
    executor = LocalExecutor(dash_lens)
    executor.store.budget = 0  # keep nothing: the select step runs each chunk's forward again
    calls.clear()
    recomputed = _flat(
        corpus_pass(dash_lens, dataset, _two_per_site, batch_size=8, executor=executor)
    )
    assert calls == [0, 16, 32, 0, 16, 32]
    assert whole.keys() == chunked.keys() == recomputed.keys()
    for key, value in chunked.items():
        assert torch.equal(value, recomputed[key]), key  # same chunks: the same bits
        # Other chunks: the same counts and activations; sums added in another grouping.
        torch.testing.assert_close(value, whole[key], rtol=1e-12, atol=1e-9)
        if not key.startswith("m/"):
            assert torch.equal(value, whole[key]), key


def test_agrees_with_the_separate_passes(dash_lens: Lens, prompts: list[str]) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    chosen = [feature_node(site, 0) for site in dash_lens.sites]
    result = corpus_pass(dash_lens, dataset, lambda _: chosen, batch_size=5)
    for site, d in densities(dash_lens, dataset, batch_size=5).items():
        torch.testing.assert_close(result.density[site], d)
    moments = Moments([(f.site, 0) for f in chosen])
    acts = feature_activations(dash_lens, dataset, chosen, batch_size=5, moments=moments)
    for f in chosen:
        # The merged statistics against those of the separate pass's dense activations, at once.
        whole = stats_of(f.site, 0, acts[f], dataset.lengths, PageSpec()).state("s")
        for key, value in result.stats[f].state("s").items():
            assert torch.equal(value, whole[key]), key
        torch.testing.assert_close(
            result.moments.correlations(f.site)[1],
            moments.correlations(f.site)[1],
            atol=1e-6,
            rtol=1e-5,
        )
