"""Dashboards for sites whose names are not hook names (directions, decoder rows) and for a
transcoder, whose "correlated neurons" must be read at its input hook, not at its output."""

from __future__ import annotations

from pathlib import Path

import torch

from feature_lens import Lens
from feature_lens.dashboard import build_dashboards, prepare_dataset
from feature_lens.dashboard.data import feature_activations
from feature_lens.dashboard.tables import Moments
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import Directions, RunPlan

TRANSCODER = "blocks.0.hook_mlp_out"  # reads blocks.0.ln2.hook_normalized (tests/conftest.py)


def with_directions(lens: Lens) -> tuple[Lens, Directions]:
    directions = Directions.from_decoder(lens, "blocks.0.hook_resid_post", [0, 1, 2])
    return lens.attach(directions), directions


def test_dashboards_build_for_directions_and_decoder_rows(
    dash_lens: Lens, prompts: list[str], tmp_path: Path
) -> None:
    lens, directions = with_directions(dash_lens)
    assert ":" in directions.name  # a site name that is no hook name
    site = build_dashboards(
        lens,
        tmp_path / "d",
        prompts[:12],
        features=[f"{directions.name}:1", f"{TRANSCODER}:0"],
        progress=False,
        circuitsvis=False,
    )
    page = site.page(feature_node(directions.name, 1))
    assert page.is_file()
    assert "Correlated features" in page.read_text()


def test_correlated_neurons_are_read_at_the_input_hook(dash_lens: Lens, prompts: list[str]) -> None:
    """r of each feature with every dimension of its dictionary's input, recomputed by hand."""
    lens, directions = with_directions(dash_lens)
    dataset = prepare_dataset(lens, prompts[:16])
    chosen = [feature_node(TRANSCODER, 3), feature_node(directions.name, 0)]
    moments = Moments([(f.site, f.index) for f in chosen])
    feature_activations(lens, dataset, chosen, moments=moments)
    mask = dataset.mask.reshape(-1)
    for feature in chosen:
        hook_in = lens.dictionary(feature.site).hook_in
        with torch.no_grad():
            _, cache = lens.model.run_with_cache(dataset.tokens, names_filter=hook_in)
            acts = lens.forward(dataset.tokens, RunPlan()).features[feature.site]
        x = cache[hook_in].reshape(-1, cache[hook_in].shape[-1])[mask].double()
        f = acts[..., feature.index].reshape(-1)[mask].double()
        expected = torch.stack(
            [torch.corrcoef(torch.stack([f, x[:, j]]))[0, 1] for j in range(x.shape[1])]
        )
        indices, r = moments.correlations(feature.site)
        got = r[indices.index(feature.index), lens.dictionary(feature.site).d_sae :]
        torch.testing.assert_close(got, expected.nan_to_num(0.0), atol=1e-4, rtol=0)


def test_fused_corpus_pass_for_directions_and_a_transcoder(
    dash_lens: Lens, prompts: list[str]
) -> None:
    """The corpus pass (page statistics merged over chunks, sums from the nonzero activations)
    for a direction, whose activations are projections and go negative, and a transcoder, whose
    input is another hook: the statistics equal those of the separate pass's dense activations to
    the bit, and r with the input dimensions equals the hand computation."""
    from feature_lens.dashboard import corpus_pass as corpus_module
    from feature_lens.dashboard.data import corpus_pass
    from feature_lens.dashboard.page_stats import PageSpec, stats_of

    lens, directions = with_directions(dash_lens)
    dataset = prepare_dataset(lens, prompts[:16])
    chosen = [feature_node(TRANSCODER, 3), feature_node(directions.name, 0)]
    original = corpus_module.chunk_starts
    try:  # two chunks (the merge exercised), batches aligned with the separate pass's
        corpus_module.chunk_starts = lambda n, chunk=8: original(n, chunk)  # type: ignore[assignment]
        result = corpus_pass(lens, dataset, lambda _: chosen, batch_size=4)
    finally:
        corpus_module.chunk_starts = original
    dense = feature_activations(lens, dataset, chosen, batch_size=4)
    assert bool((dense[chosen[1]] < 0).any())  # the direction's negative values are in play
    for feature in chosen:
        assert feature.index is not None
        whole = stats_of(feature.site, feature.index, dense[feature], dataset.lengths, PageSpec())
        merged = result.stats[feature].state("s")
        for key, value in whole.state("s").items():
            assert torch.equal(value, merged[key]), (feature, key)
    mask = dataset.mask.reshape(-1)
    for feature in chosen:
        assert feature.index is not None
        hook_in = lens.dictionary(feature.site).hook_in
        with torch.no_grad():
            _, cache = lens.model.run_with_cache(dataset.tokens, names_filter=hook_in)
        x = cache[hook_in].reshape(-1, cache[hook_in].shape[-1])[mask].double()
        f = dense[feature].reshape(-1)[mask].double()
        expected = torch.stack(
            [torch.corrcoef(torch.stack([f, x[:, j]]))[0, 1] for j in range(x.shape[1])]
        )
        indices, r = result.moments.correlations(feature.site)
        got = r[indices.index(feature.index), lens.dictionary(feature.site).d_sae :]
        torch.testing.assert_close(got, expected.nan_to_num(0.0), atol=1e-4, rtol=0)
