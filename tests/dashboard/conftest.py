"""Fixtures for the dashboard tests: a tiny random model whose vocabulary holds an XSS payload, a
Lens with one dictionary of every kind, a dataset of prompts of different lengths, an attribution
graph, and one small site built once per session (shared by the browser tests)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from feature_lens import Lens
from feature_lens.attribution import LogitDiff, PromptSet, attribute
from feature_lens.dashboard import Dashboard, build_dashboards
from feature_lens.graph import AttributionGraph
from tests.conftest import WORDS, full_dictionaries, make_model, make_tokenizer

SCRIPT = "<script>alert(1)</script>"
IMG = ['"><img', "src=x", "onerror=alert(1)>"]
XSS_WORDS = [SCRIPT, *IMG]
XSS_PROMPT = f"w1 w2 {SCRIPT} {' '.join(IMG)} w3"


def make_xss_tokenizer(folder: Path) -> Any:
    """The tests' word-level tokenizer with its last four words replaced by the XSS payload's
    pieces, so those strings come back from `to_str_tokens` exactly."""
    return make_tokenizer(folder, [*WORDS[: -len(XSS_WORDS)], *XSS_WORDS])


def dataset_prompts(n: int = 48, seed: int = 0) -> list[str]:
    """Prompts of 2 to 10 words; every fourth one carries the XSS payload."""
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        if i % 4 == 3:
            prompts.append(XSS_PROMPT)
        else:
            prompts.append(" ".join(f"w{rng.randrange(30)}" for _ in range(rng.randrange(2, 11))))
    return prompts


@pytest.fixture(scope="session")
def dash_lens(tmp_path_factory: pytest.TempPathFactory) -> Lens:
    tokenizer = make_xss_tokenizer(tmp_path_factory.mktemp("xss-tokenizer"))
    model = make_model(tokenizer, seed=5)
    return Lens(model, full_dictionaries(model))


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    return dataset_prompts()


@pytest.fixture(scope="session")
def dash_graph(dash_lens: Lens) -> AttributionGraph:
    """A connectome on the XSS prompt (its tokens are shown on the connectome page)."""
    other = "w1 w2 w4 w5 w6 w7 w3"
    prompt_set = PromptSet.build(dash_lens, XSS_PROMPT, other, answers=[[5, 9]])
    return attribute(dash_lens, prompt_set, LogitDiff(), max_nodes=16, progress=False)


@pytest.fixture(scope="session")
def site(
    dash_lens: Lens,
    prompts: list[str],
    dash_graph: AttributionGraph,
    tmp_path_factory: pytest.TempPathFactory,
) -> Dashboard:
    out = tmp_path_factory.mktemp("site") / "dash"
    return build_dashboards(
        dash_lens, out, prompts, graph=dash_graph, top_k=2, progress=False, n_neighbour_prompts=3
    )
