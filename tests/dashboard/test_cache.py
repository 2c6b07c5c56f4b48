"""The corpus-pass cache: a second build over the same corpus runs no corpus pass and writes the
same pages; a change to the corpus, a dictionary or the features is a different key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.dashboard import build_dashboards, corpus_pass
from feature_lens.dashboard import data as data_module
from feature_lens.dashboard.cache import corpus_pass_key
from feature_lens.dashboard.data import feature_label, prepare_dataset
from feature_lens.graph.node import feature as feature_node
from tests.conftest import make_sae


def _pages(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((out / "features").glob("*.html"))}


def test_second_build_skips_the_corpus_passes(
    dash_lens: Lens, prompts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    kwargs: dict[str, Any] = {"top_k": 2, "progress": False, "n_neighbour_prompts": 2}
    first = build_dashboards(dash_lens, tmp_path / "a", prompts, cache_dir=cache, **kwargs)
    # The one fused corpus pass: its densities and sums, and the chosen features' data.
    assert len(list(cache.glob("*.safetensors"))) == 2
    assert not list(cache.glob("*.tmp"))

    def no_pass(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a corpus pass ran although its result is cached")

    monkeypatch.setattr(corpus_pass, "pass_chunk", no_pass)
    monkeypatch.setattr(data_module, "densities", no_pass)
    monkeypatch.setattr(data_module, "feature_activations", no_pass)
    second = build_dashboards(dash_lens, tmp_path / "b", prompts, cache_dir=cache, **kwargs)
    assert second.features == first.features
    pages = _pages(tmp_path / "a")
    assert pages
    assert _pages(tmp_path / "b") == pages  # histograms, examples, correlation tables alike
    with pytest.raises(AssertionError, match="corpus pass ran"):
        build_dashboards(dash_lens, tmp_path / "c", prompts[:-1], cache_dir=cache, **kwargs)


def test_key_covers_model_dictionaries_corpus_and_request(
    dash_lens: Lens, prompts: list[str]
) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    request = {"features": [feature_label(feature_node("blocks.0.hook_resid_post", 1))]}
    key = corpus_pass_key(dash_lens, dataset.tokens, request)
    assert corpus_pass_key(dash_lens, dataset.tokens.clone(), dict(request)) == key
    other_tokens = dataset.tokens.clone()
    other_tokens[3, 1] += 1
    assert corpus_pass_key(dash_lens, other_tokens, request) != key
    assert corpus_pass_key(dash_lens, dataset.tokens, {"features": []}) != key
    d = dash_lens.model.cfg.d_model
    changed = Lens(
        dash_lens.model,
        [
            *list(dash_lens.dictionaries.values())[:-1],
            make_sae("standard", d, "blocks.1.hook_resid_post", seed=99),
        ],
    )
    assert corpus_pass_key(changed, dataset.tokens, request) != key
    with torch.no_grad():
        weight = dash_lens.model.blocks[0].attn.W_Q
        original = weight[0, 0, 0].clone()
        weight[0, 0, 0] += 1.0  # one weight of the model
        try:
            assert corpus_pass_key(dash_lens, dataset.tokens, request) != key
        finally:
            weight[0, 0, 0] = original
    assert corpus_pass_key(dash_lens, dataset.tokens, request) == key
