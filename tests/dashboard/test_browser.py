"""The built site in a real browser: headless Chromium opens pages from disk (file://).

Checks: the JavaScript ran and drew (graph elements present, circuitsvis mounted), the console is
empty, the network log shows no request from the page, and the XSS payload in the prompts shows as
text while `alert` (replaced by a recorder in a copy of the page) is never called.
Skipped only when Chromium is not installed (CI installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from feature_lens.dashboard import Dashboard
from feature_lens.dashboard.html import csp_hash

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

GUARD = (
    "<script>window.alert = function () { document.documentElement.setAttribute('data-xss', '1'); };"
    "window.onerror = function () { document.documentElement.setAttribute('data-js-error', '1'); };</script>"
)


@dataclass
class Visit:
    dom: str
    console: list[str]
    requests: list[str]


def visit(page: Path) -> Visit:
    """Load `page` in headless Chromium (network resolution disabled) and report what happened."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        netlog = Path(profile) / "netlog.json"
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}/data",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--log-net-log={netlog}",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=10000",
                "--window-size=1200,1000",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        events = json.loads(netlog.read_text())["events"] if netlog.is_file() else []
    requests = [
        e["params"]["url"]
        for e in events
        if isinstance(e.get("params"), dict)
        and "url" in e["params"]
        and "file://" in str(e["params"].get("network_isolation_key", ""))
        and not e["params"]["url"].startswith("file:")
    ]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Visit(proc.stdout, console, requests)


@pytest.fixture(scope="module")
def guarded(site: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the site whose pages start with GUARD (alert and errors are recorded in the DOM)."""
    copy = tmp_path_factory.mktemp("guarded") / "site"
    shutil.copytree(site.out, copy)
    guard_code = GUARD.removeprefix("<script>").removesuffix("</script>")
    allowed = f"script-src {csp_hash(guard_code)} "
    for page in copy.rglob("*.html"):
        text = page.read_text()
        # The page's CSP allows only hashed scripts: allow the guard by its hash too.
        text = text.replace("script-src &#x27;none&#x27;", "script-src ", 1)
        text = text.replace("script-src ", html.escape(allowed), 1)
        page.write_text(text.replace("<head>", "<head>" + GUARD, 1))
    return copy


def xss_feature_page(site: Dashboard) -> Path:
    for page in sorted((site.out / "features").iterdir()):
        if "&lt;script&gt;alert(1)&lt;/script&gt;" in page.read_text():
            return page
    raise AssertionError("no feature page shows the XSS prompt")


def test_index_renders_offline(site: Dashboard) -> None:
    result = visit(site.out / "index.html")
    assert result.console == []
    assert result.requests == []
    for feature in site.features:
        assert feature.label in result.dom
    assert "connectome.html" in result.dom


def test_feature_page_renders_offline_and_runs_no_injected_code(
    site: Dashboard, guarded: Path
) -> None:
    page = xss_feature_page(site)
    result = visit(guarded / "features" / page.name)
    assert result.console == [], result.console
    assert result.requests == []
    assert "Top activating examples" in result.dom
    assert "Direct logit effect" in result.dom
    assert "Logit histogram" in result.dom
    assert "Correlated features" in result.dom
    assert "Neuron alignment" in result.dom
    assert re.search(r'data-graph="neighbourhood"[^>]*data-rendered="\d+"', result.dom)
    assert "<circle" in result.dom  # the neighbourhood graph was drawn by graph.js
    cv = re.search(r'<div class="cv" id="cv-top"[^>]*>(.*?)</div>\s*<script', result.dom, re.S)
    assert cv is not None
    assert len(cv.group(1)) > 100
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.dom
    assert "onerror=alert(1)&gt;" in result.dom
    assert "<img" not in result.dom
    assert 'data-xss="1"' not in result.dom
    assert 'data-js-error="1"' not in result.dom


def test_connectome_renders_offline_with_every_edge(site: Dashboard, guarded: Path) -> None:
    assert site.graph is not None
    result = visit(guarded / "connectome.html")
    assert result.console == []
    assert result.requests == []
    edges = len(site.graph.edges)
    assert f'data-rendered="{edges}"' in result.dom
    assert result.dom.count("<path") == edges
    assert result.dom.count('class="node') == len(site.graph.nodes)
    assert f"of {edges} edges" in result.dom  # the threshold control's label was filled in
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.dom
    assert "<img" not in result.dom
    assert 'data-xss="1"' not in result.dom
    assert 'data-js-error="1"' not in result.dom


def test_detector_sees_network_and_console_errors(tmp_path: Path) -> None:
    """The checks above can fail: a page that fetches and throws is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<p>x</p><img src="http://example.com/a.png"><script>undefinedFn()</script>')
    result = visit(page)
    assert any("example.com" in url for url in result.requests)
    assert any("undefinedFn" in line for line in result.console)
