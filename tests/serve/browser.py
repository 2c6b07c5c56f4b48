"""Run the explorer on a free 127.0.0.1 port in a background thread, for browser tests and the
benchmark; Chromium is driven through Playwright's Python API (system Chromium, no download)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def running(app: Any, port: int) -> Iterator[str]:
    """Serve `app` on 127.0.0.1:`port` until the block ends; yields the base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def browser_page(base: str) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A Chromium page; yields it with the console errors and every request URL seen."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
            yield page, errors, requests
        finally:
            browser.close()


def node_point(page: Any, index: int) -> tuple[float, float]:
    """Page coordinates of node `index` of the graph on screen."""
    x, y = page.evaluate(
        """(i) => { const s = window.featureLensExplorer.state, c = document.getElementById('graph-canvas');
        const r = c.getBoundingClientRect();
        return [r.left + s.px[i] * s.view.k + s.view.x, r.top + s.py[i] * s.view.k + s.view.y]; }""",
        index,
    )
    return float(x), float(y)


def feature_nodes_on_screen(page: Any, n: int) -> list[int]:
    """Up to `n` visible feature nodes, most influential first, far enough apart to click."""
    return list(
        page.evaluate(
            """(n) => { const s = window.featureLensExplorer.state, out = [];
            const vis = s.visible.filter(i => s.data.nodes[i].kind === 'feature')
              .sort((a, b) => s.data.nodes[b].influence - s.data.nodes[a].influence);
            for (const i of vis) {
              const x = s.px[i] * s.view.k, y = s.py[i] * s.view.k;
              if (out.every(j => Math.hypot(s.px[j] * s.view.k - x, s.py[j] * s.view.k - y) > 30)) out.push(i);
              if (out.length >= n) break;
            }
            return out; }""",
            n,
        )
    )
