"""The fused corpus pass against an independent recomputation: each prompt run on its own through
the plain TransformerLens model (`run_with_cache`, no padding, no Lens), every dictionary's own
`encode` on the cached input, and densities, activations and Pearson correlations computed from
the full `[tokens, d_sae]` matrices. Also: chunking does not change a bit, and the old two-pass
functions agree with it."""

from __future__ import annotations

import torch

from feature_lens import Lens
from feature_lens.dashboard import corpus_pass
from feature_lens.dashboard.data import (
    corpus_stats,
    densities,
    feature_activations,
    prepare_dataset,
)
from feature_lens.dashboard.tables import Moments
from feature_lens.graph.node import feature as feature_node


def _reference(lens: Lens, dataset) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[no-untyped-def]
    """Per site: features `[tokens, d_sae]` and inputs `[tokens, d_in]` over all real tokens."""
    feats: dict[str, list[torch.Tensor]] = {s: [] for s in lens.sites}
    inputs: dict[str, list[torch.Tensor]] = {s: [] for s in lens.sites}
    for row, length in zip(dataset.tokens, dataset.lengths, strict=True):
        with torch.no_grad():
            _, cache = lens.model.run_with_cache(row[: int(length)][None])
            for site in lens.sites:
                d = lens.dictionary(site)
                x = cache[d.hook_in][0].double()
                feats[site].append(d.encode(cache[d.hook_in][0]).double())
                inputs[site].append(x)
    return {s: (torch.cat(feats[s]), torch.cat(inputs[s])) for s in lens.sites}


def test_fused_pass_equals_plain_hooks(dash_lens: Lens, prompts: list[str]) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    stats = corpus_stats(dash_lens, dataset, batch_size=7)
    reference = _reference(dash_lens, dataset)
    mask = dataset.mask
    density = stats.densities()
    for site, (f, x) in reference.items():
        assert stats.n_tokens == f.shape[0]
        torch.testing.assert_close(density[site].double(), (f > 0).double().mean(0))
        # Two features per site, the densest and a rarer one, at every real token.
        active = (f > 0).sum(0)
        order = torch.argsort(active, descending=True)
        chosen = [int(order[0]), int(order[len(order) // 3])]
        for index in chosen:
            acts = stats.activations(site, index)
            assert (acts[~mask] == 0).all()
            torch.testing.assert_close(acts[mask].double(), f[:, index], atol=1e-5, rtol=1e-5)
        # Pearson r of the chosen features with every feature and input dimension.
        moments = stats.moments([(site, i) for i in chosen])
        got_chosen, r = moments.correlations(site)
        assert got_chosen == chosen
        rows = torch.cat([f, x], 1)
        for k, index in enumerate(chosen):
            a = f[:, index] - f[:, index].mean()
            b = rows - rows.mean(0)
            denom = a.norm() * b.norm(dim=0)
            expect = torch.where(denom > 1e-9, (a @ b) / denom.clamp_min(1e-300), 0.0)
            live = b.norm(dim=0) > 1e-4  # constant columns: r is 0 by convention on both sides
            torch.testing.assert_close(r[k][live], expect[live], atol=1e-4, rtol=1e-4)


def test_chunking_changes_no_bit(dash_lens: Lens, prompts: list[str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    dataset = prepare_dataset(dash_lens, prompts)
    whole = corpus_stats(dash_lens, dataset, batch_size=8).state()
    assert len(corpus_pass.chunk_starts(len(dataset))) == 1
    monkeypatch.setattr(corpus_pass, "CHUNK_PROMPTS", 16)
    monkeypatch.setattr(
        corpus_pass,
        "chunk_starts",
        lambda n, chunk=16: [(a, min(a + chunk, n)) for a in range(0, n, chunk)],
    )
    chunked = corpus_stats(dash_lens, dataset, batch_size=8).state()
    assert whole.keys() == chunked.keys()
    for key, value in whole.items():
        assert torch.equal(value, chunked[key]), key  # batches of 8 in chunks of 16: same sums


def test_agrees_with_the_separate_passes(dash_lens: Lens, prompts: list[str]) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    stats = corpus_stats(dash_lens, dataset, batch_size=5)
    for site, d in densities(dash_lens, dataset, batch_size=5).items():
        torch.testing.assert_close(stats.densities()[site], d)
    chosen = [feature_node(site, 0) for site in dash_lens.sites]
    moments = Moments([(f.site, 0) for f in chosen])
    acts = feature_activations(dash_lens, dataset, chosen, batch_size=5, moments=moments)
    fused = stats.moments([(f.site, 0) for f in chosen])
    for f in chosen:
        assert torch.equal(stats.activations(f.site, 0), acts[f])
        torch.testing.assert_close(
            fused.correlations(f.site)[1], moments.correlations(f.site)[1], atol=1e-6, rtol=1e-5
        )
