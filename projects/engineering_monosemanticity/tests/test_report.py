"""The results browser: figures drawn, text escaped, nothing fetched from the network."""

import re
from pathlib import Path

from projects.engineering_monosemanticity.config import RunConfig
from projects.engineering_monosemanticity.report import build_report
from projects.engineering_monosemanticity.runner import run_sweep


def test_report_escapes_text_and_uses_local_images(tmp_path: Path) -> None:
    configs = [
        RunConfig(N=16, m=4, k=8, log2_batch_size=4, log2_training_steps=4, learning_rate=lr)
        for lr in (0.01, 0.03)
    ]
    evil = "<script>alert(1)</script>"
    run_sweep(evil, configs, ("learning_rate",), tmp_path, progress=False)
    page = build_report(tmp_path).read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    sources = re.findall(r"src='([^']+)'", page)
    assert sources
    for src in sources:
        assert not src.startswith(("http:", "https:", "//"))
        assert (tmp_path / src).is_file()
        assert (tmp_path / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "single-feature activations</summary>" in page
    assert any(src.endswith("_sfa.png") for src in sources)
    # The Table 1 reference (21 batches + header) and the seed app's pages.
    assert page.count("<tr><td class=l>") == 21
    for name in ("Learning rate", "Initial bias", "GeLU vs ReLU", "Regularisation"):
        assert f"<li>{name}:" in page
    # header + one row per run in the sweep table; header + 21 rows in the Table 1 reference.
    assert page.count("<tr>") == (1 + len(configs)) + (1 + 21)
