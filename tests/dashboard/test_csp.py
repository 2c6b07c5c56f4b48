"""The Content-Security-Policy in real Chromium (Playwright driving the system browser).

Every page of a built site renders from disk with an empty console; in a copy of each page with an
injected inline script, an `onerror` handler and a `<script src=file:...>` (pointing at a real file
on the disk), none of the three runs while our own scripts still draw. The notebook (inline) views
render too. Skipped only when Chromium or Playwright is missing (scripts/test.sh installs Chromium).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feature_lens.dashboard import Dashboard
from feature_lens.dashboard.html import content_security_policy, page, script_loader

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

INJECTED = (
    "<script>document.documentElement.setAttribute('data-inline', '1')</script>"
    "<img src=x onerror=\"document.documentElement.setAttribute('data-onerror', '1')\">"
    '<script src="{evil}"></script>'
)
MARKS = ("data-inline", "data-onerror", "data-evil")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """Load `path`; returns the page and its console messages and page errors."""
    tab = browser.new_page()
    messages: list[str] = []
    tab.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    tab.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    tab.goto(path.resolve().as_uri())
    tab.wait_for_load_state("load")
    tab.wait_for_timeout(200)
    return tab, messages


def marks(tab: Any) -> list[str]:
    return [m for m in MARKS if tab.evaluate(f"document.documentElement.hasAttribute('{m}')")]


def rendered(tab: Any, path: Path) -> None:
    """Our own scripts ran where the page has something for them to draw."""
    html = path.read_text()
    for graph in ("neighbourhood", "connectome"):
        if f'data-graph="{graph}"' in html:
            tab.wait_for_selector(f'[data-graph="{graph}"][data-rendered]', timeout=10_000)
    if 'id="cv-top"' in html:
        tab.wait_for_function("document.getElementById('cv-top').childElementCount > 0")


def site_pages(site: Dashboard) -> list[Path]:
    pages = sorted(site.out.rglob("*.html"))
    assert len(pages) >= 4
    return pages


def test_policy_has_no_wildcards_or_unsafe_script_sources() -> None:
    policy = content_security_policy([script_loader(["assets/graph.js"])])
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    for bad in ("'unsafe-inline'", "'unsafe-eval'", "'self'", "file:", "*", "data:", "blob:"):
        assert bad not in script_src
    assert "'sha256-" in script_src
    assert "script-src 'none'" in content_security_policy()


def test_every_page_renders_with_an_empty_console(browser: Any, site: Dashboard) -> None:
    for path in site_pages(site):
        tab, messages = open_page(browser, path)
        rendered(tab, path)
        assert messages == [], (path.name, messages)
        tab.close()


def test_injected_scripts_are_blocked_and_the_page_still_renders(
    browser: Any, site: Dashboard, tmp_path: Path
) -> None:
    copy = tmp_path / "site"
    shutil.copytree(site.out, copy)
    evil = tmp_path / "evil.js"
    evil.write_text("document.documentElement.setAttribute('data-evil', '1');")
    injected = INJECTED.format(evil=evil.resolve().as_uri())
    for path in sorted(copy.rglob("*.html")):
        path.write_text(path.read_text().replace("<body>", "<body>" + injected, 1))
        tab, messages = open_page(browser, path)
        rendered(tab, path)
        assert marks(tab) == [], path.name
        blocked = " ".join(messages)
        assert "Executing inline script violates" in blocked
        assert "inline event handler violates" in blocked
        assert f"Loading the script '{evil.resolve().as_uri()}' violates" in blocked
        tab.close()


def test_the_detector_sees_injections_without_the_policy(browser: Any, tmp_path: Path) -> None:
    """The checks above can fail: the same injection runs on a page without the policy."""
    evil = tmp_path / "evil.js"
    evil.write_text("document.documentElement.setAttribute('data-evil', '1');")
    path = tmp_path / "open.html"
    path.write_text(f"<!DOCTYPE html><body>{INJECTED.format(evil=evil.resolve().as_uri())}</body>")
    tab, _ = open_page(browser, path)
    assert marks(tab) == list(MARKS)


def test_notebook_views_render_with_inline_assets(
    browser: Any, site: Dashboard, tmp_path: Path
) -> None:
    from feature_lens.dashboard.notebook import show_connectome, show_feature

    assert site.graph is not None
    feature = next(iter(site.features))
    for name, view in (
        ("feature.html", show_feature(site, feature)),
        ("connectome.html", show_connectome(site.graph, site)),
    ):
        path = tmp_path / name
        path.write_text(view.document)
        tab, messages = open_page(browser, path)
        rendered(tab, path)
        assert messages == [], (name, messages)
        tab.close()
    bare = tmp_path / "bare.html"
    bare.write_text(page("t", "<p>hello</p>" + INJECTED.format(evil="x.js"), root="", scripts=()))
    tab, _ = open_page(browser, bare)
    assert marks(tab) == []
