"""The main job, `feature-lens dashboard`, end to end on the embedded model at reduced sizes: the
default code path (zoo Lens, zoo corpus, the ioi task's connectome, top features per site) plus
clusters, checked file by file. Skipped only while the embedded model's data is not built."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from feature_lens.cli import main
from feature_lens.dashboard import FeatureId
from feature_lens.graph import AttributionGraph
from feature_lens.zoo import default_zoo_dir

needs_zoo = pytest.mark.skipif(
    not (default_zoo_dir() / "model.json").is_file(),
    reason="the embedded model's data (feature_lens/zoo/data) is not built",
)


class Links(HTMLParser):
    """href/src attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("href", "src") and v]


def test_clusters_without_a_connectome_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dash"
    args = ["dashboard", "--out", str(out), "--no-task", "--clusters", "2", "--no-progress"]
    assert main(args) == 1
    assert "--clusters needs a connectome" in capsys.readouterr().err
    assert not out.exists()


@needs_zoo
def test_main_job_on_the_embedded_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dash"
    args = [
        *("dashboard", "--out", str(out), "--no-progress", "--n-prompts", "48", "--top-k", "2"),
        *("--task-prompts", "4", "--max-nodes", "16", "--clusters", "3"),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (out / "index.html").resolve().as_uri() in printed
    assert (out / "connectome.html").resolve().as_uri() in printed
    graph = AttributionGraph.load(out / "graph.json")
    assert graph.metric == "logit_diff"
    assert graph.settings["positions"] == "keep"
    features = {
        FeatureId(n.site, n.index)
        for n in graph.nodes.values()
        if n.kind == "feature" and n.index is not None
    }
    assert features
    pages = {p.name for p in (out / "features").iterdir()}
    assert {f"{f.slug}.html" for f in features} <= pages  # every graph feature has a page
    assert len(pages) > len(features)  # and the top features per site
    clustered = {n.id: n.cluster for n in graph.nodes.values() if n.cluster is not None}
    assert set(clustered.values()) == {0, 1, 2}
    assert sorted(p.name for p in (out / "clusters").iterdir()) == [
        "0.html",
        "1.html",
        "2.html",
        "collapsed.html",
    ]
    collapsed = json.loads((out / "graph.collapsed.json").read_text())
    assert sum(site == "cluster" for site in collapsed["nodes"]["site"]) == 3
    for page in out.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text())
        for ref in parser.refs:
            assert (page.parent / ref).resolve().is_file(), (page, ref)
