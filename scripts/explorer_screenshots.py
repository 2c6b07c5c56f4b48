"""Screenshots of the explorer on the embedded model for docs/explorer.md (headless Chromium via
Playwright, system browser). Run from the repository root: python scripts/explorer_screenshots.py"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feature_lens import Lens
from feature_lens.serve import free_port
from feature_lens.serve.server import build
from tests.serve.browser import browser_page, feature_nodes_on_screen, node_point, running

OUT = Path("docs/explorer")
PROMPT = "when mary and john went to the store , john gave a drink to"


def main() -> None:
    lens = Lens.load()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        app = build(lens, folder, port=port)
        with running(app, port) as base, browser_page(base) as (page, errors, _):
            page.set_viewport_size({"width": 1500, "height": 820})
            page.goto(base + "/")
            page.fill("#prompt", PROMPT)
            page.click("#options summary")
            page.fill("#answer-a", " mary")
            page.fill("#answer-b", " john")
            page.click("#compute")
            page.wait_for_selector("#canvas-box[data-graph]", timeout=60000)
            page.click("#options summary")
            a, b, c = feature_nodes_on_screen(page, 3)
            for index in (a, b):
                x, y = node_point(page, index)
                with page.expect_response(lambda r: r.url.endswith("/annotations")):
                    page.keyboard.down("Shift")
                    page.mouse.click(x, y)
                    page.keyboard.up("Shift")
            page.fill("#supernode-name", "name movers")
            with page.expect_response(lambda r: r.url.endswith("/annotations")):
                page.click("#make-supernode")
            x, y = node_point(page, c)
            page.mouse.move(x, y)
            page.wait_for_timeout(300)
            page.screenshot(path=str(OUT / "graph.png"))
            page.mouse.click(x, y)
            page.wait_for_selector("#panel [data-feature]", timeout=30000)
            page.wait_for_timeout(300)
            page.locator("#panel").screenshot(path=str(OUT / "panel.png"))
            page.locator("#supernode-list li").first.click()
            page.select_option("#iv-mode", "zero")
            page.check("#iv-freeze")
            page.click("#iv-run")
            page.wait_for_selector("#iv-result table[data-result=top]", timeout=30000)
            page.locator("#panel").screenshot(path=str(OUT / "intervention.png"))
            if errors:
                raise SystemExit(f"console errors: {errors}")
    print("wrote", ", ".join(str(p) for p in sorted(OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
