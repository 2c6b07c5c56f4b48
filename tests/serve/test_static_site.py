"""The static site's explorer-like views: the connectome laid out by token position and site,
pruned by influence by default, with readable labels and a prompt switcher; feature pages that
lead with their top examples; an index with search, site filter, sort and a label column. Checked
in the data, and in Chromium through Playwright on the file:// pages (no server)."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from feature_lens.dashboard import Dashboard
from tests.dashboard.conftest import SCRIPT
from tests.serve.browser import CHROMIUM


def island(html: str, element_id: str) -> Any:
    match = re.search(
        rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S
    )
    assert match is not None
    return json.loads(match.group(1))


def test_connectome_data_positions_ranks_and_labels(site: Dashboard) -> None:
    graph = site.graph
    assert graph is not None
    data = island((site.out / "connectome.html").read_text(), "connectome")
    assert data["layout"] == "positions"
    assert data["prompts"] == graph.prompts
    kept = {n["id"] for n in data["nodes"] if n["kind"] != "logit" and n["rank"] < 0.8}
    expected = {i for i, n in graph.prune_influence(0.8).nodes.items() if n.kind != "logit"}
    assert kept == expected
    for node in data["nodes"]:
        record = graph.nodes[node["id"]]
        assert node["pos"] == (-1 if record.pos is None else record.pos)
        assert data["rows"][node["siteRow"]] in (graph.metric, site.info.short(record.site))
        if record.kind == "feature":
            assert "@" not in node["label"]
            data_ = next(
                (
                    d
                    for f, d in site.features.items()
                    if f.site == record.site and f.index == record.index
                ),
                None,
            )
            if data_ is not None and data_.top_logits:
                assert node["label"] == f"#{record.index} {data_.top_logits[0][0]!r}"


pytestmark_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def open_file(page: Any, path: Any) -> None:
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")


@pytestmark_browser
def test_connectome_prunes_by_influence_and_switches_prompts(site: Dashboard) -> None:
    from tests.serve.browser import browser_page

    graph = site.graph
    assert graph is not None
    with browser_page("file://") as (page, errors, requests):
        open_file(page, site.out / "connectome.html")
        shown = page.locator("g.node:not([style*='display: none'])")
        expected = graph.prune_influence(0.8)
        assert shown.count() == len(expected.nodes)
        assert set(shown.evaluate_all("els => els.map(e => e.dataset.id)")) == set(expected.nodes)
        # x follows the token position.
        xs: dict[int, list[float]] = {}
        for node_id, transform in page.locator("g.node").evaluate_all(
            "els => els.map(e => [e.dataset.id, e.getAttribute('transform')])"
        ):
            record = graph.nodes[node_id]
            if record.pos is not None and record.kind != "logit":
                xs.setdefault(record.pos, []).append(float(transform[10:].split(",")[0]))
        positions = sorted(xs)
        for a, b in itertools.pairwise(positions):
            assert max(xs[a]) < min(xs[b])
        page.fill("#node-threshold", "100")
        page.dispatch_event("#node-threshold", "input")
        assert shown.count() == len(graph.nodes)
        assert SCRIPT in page.locator("text.axis-token").all_text_contents()
        if len(graph.prompts) > 1:
            page.select_option("#prompt-switch", "1")
            assert page.locator("text.axis-token").first.text_content() == graph.prompts[1][0]
    assert errors == []
    assert all(r.startswith("file:") for r in requests)


@pytestmark_browser
def test_index_search_filter_sort_and_feature_page_order(site: Dashboard) -> None:
    from tests.serve.browser import browser_page

    html = next((site.out / "features").iterdir()).read_text()
    assert html.index("Top activating examples") < html.index("Activation histogram")
    with browser_page("file://") as (page, errors, _):
        open_file(page, site.out / "index.html")
        rows = page.locator("#feature-table tbody tr")
        visible = page.locator("#feature-table tbody tr:not([style*='display: none'])")
        assert rows.count() == len(site.features)
        first = next(iter(site.features))
        page.fill("#feature-search", first.label)
        assert 1 <= visible.count() < rows.count()
        assert first.label in visible.first.inner_text()
        page.fill("#feature-search", "")
        page.select_option("#feature-site", first.site)
        assert visible.count() == sum(f.site == first.site for f in site.features)
        page.select_option("#feature-site", "")
        page.click("#feature-table th:nth-child(4)")  # density, ascending
        page.click("#feature-table th:nth-child(4)")  # descending
        densities = [
            float(x)
            for x in page.locator("#feature-table tbody tr td:nth-child(4)").evaluate_all(
                "els => els.map(e => e.dataset.sort)"
            )
        ]
        assert densities == sorted(densities, reverse=True)
        labels = page.locator("#feature-table tbody td:nth-child(3)").all_text_contents()
        assert any(label for label in labels)
    assert errors == []


@pytestmark_browser
def test_prompt_switcher_relabels_the_tokens(serve_lens: Any, tmp_path: Any) -> None:
    from feature_lens.attribution import LogProb, PromptSet, attribute
    from feature_lens.dashboard.connectome import connectome_page
    from feature_lens.dashboard.pages import SiteInfo
    from tests.serve.browser import browser_page

    texts = ["w1 w2 w3 w4", f"w5 w6 {SCRIPT} w8"]
    prompts = PromptSet.build(serve_lens, texts, answers=[[3], [3]])
    graph = attribute(serve_lens, prompts, LogProb(), max_nodes=10, progress=False)
    path = tmp_path / "c.html"
    path.write_text(connectome_page(graph, SiteInfo({}, {}), inline_assets=True))
    with browser_page("file://") as (page, errors, _):
        open_file(page, path)
        axis = page.locator("text.axis-token")
        assert axis.all_text_contents()[: len(graph.prompts[0])] == graph.prompts[0]
        page.select_option("#prompt-switch", "1")
        assert axis.all_text_contents()[: len(graph.prompts[1])] == graph.prompts[1]
        assert SCRIPT in page.locator("[data-token-line]").inner_text()
    assert errors == []
