"""Dashboards for sites whose names are not hook names (directions, decoder rows) and for a
transcoder, whose "correlated neurons" must be read at its input hook, not at its output."""

from __future__ import annotations

from pathlib import Path

import torch

from feature_lens import Lens
from feature_lens.dashboard import FeatureId, build_dashboards, prepare_dataset
from feature_lens.dashboard.data import feature_activations
from feature_lens.dashboard.tables import Moments
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
    page = site.page(FeatureId(directions.name, 1))
    assert page.is_file()
    assert "Correlated features" in page.read_text()


def test_correlated_neurons_are_read_at_the_input_hook(dash_lens: Lens, prompts: list[str]) -> None:
    """r of each feature with every dimension of its dictionary's input, recomputed by hand."""
    lens, directions = with_directions(dash_lens)
    dataset = prepare_dataset(lens, prompts[:16])
    chosen = [FeatureId(TRANSCODER, 3), FeatureId(directions.name, 0)]
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
