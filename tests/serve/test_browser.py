"""The explorer in real Chromium (Playwright, system browser): type a prompt, wait for the graph,
pin two nodes, group them into a supernode, reload and find both restored, open a feature panel,
intervene and see the logits change. No console errors, no dialog (the vocabulary and the
supernode name carry XSS payloads), and no request leaves the local server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feature_lens import Lens
from feature_lens.serve import free_port
from tests.dashboard.conftest import SCRIPT, XSS_PROMPT
from tests.serve.browser import CHROMIUM, browser_page, feature_nodes_on_screen, node_point, running
from tests.serve.conftest import make_app

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def test_explorer_end_to_end(serve_lens: Lens, tmp_path: Path) -> None:
    port = free_port()
    app = make_app(serve_lens, tmp_path / "graphs", hosts=[f"127.0.0.1:{port}"])
    with running(app, port) as base, browser_page(base) as (page, errors, requests):
        page.goto(base + "/")
        page.fill("#prompt", XSS_PROMPT)
        page.click("#compute")
        page.wait_for_selector("#canvas-box[data-graph]", timeout=60000)
        assert XSS_PROMPT in page.inner_text("#graph-title")
        assert page.locator("#graph-list li").count() == 1
        graph_id = page.evaluate("window.featureLensExplorer.state.graphId")
        a, b = feature_nodes_on_screen(page, 2)
        ids = page.evaluate(
            "(ij) => ij.map(i => window.featureLensExplorer.state.data.nodes[i].id)", [a, b]
        )
        for index in (a, b):
            x, y = node_point(page, index)
            with page.expect_response(lambda r: r.url.endswith("/annotations")):
                page.keyboard.down("Shift")
                page.mouse.click(x, y)
                page.keyboard.up("Shift")
        assert page.locator("#pinned-list li").count() == 2
        page.fill("#supernode-name", SCRIPT)
        with page.expect_response(lambda r: r.url.endswith("/annotations")):
            page.click("#make-supernode")
        assert page.locator("#supernode-list li").count() == 1

        page.reload()
        page.wait_for_selector(f"#canvas-box[data-graph='{graph_id}']", timeout=30000)
        assert page.evaluate("window.featureLensExplorer.state.graphId") == graph_id
        pinned = page.locator("#pinned-list li")
        assert pinned.count() == 2
        assert sorted(pinned.evaluate_all("els => els.map(e => e.dataset.node)")) == sorted(ids)
        assert SCRIPT in page.inner_text("#supernode-list")  # shown as text, never as markup

        x, y = node_point(page, a)
        page.mouse.click(x, y)
        page.wait_for_selector("#panel [data-feature]", timeout=30000)
        assert page.locator("#panel .example").count() >= 1
        page.wait_for_url(re.compile(rf"#g={graph_id}&n=feature"))
        page.select_option("#iv-mode", "scale")
        page.fill("#iv-value", "-4")
        page.click("#iv-run")
        page.wait_for_selector("#iv-result table[data-result=top]", timeout=30000)
        changes = page.locator("#iv-result table td.num:nth-child(4)").all_inner_texts()
        assert changes
        assert any(abs(float(c)) > 1e-3 for c in changes)

    assert errors == []
    assert requests
    assert all(r.startswith((base + "/", "data:")) for r in requests)
