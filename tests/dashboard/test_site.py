"""The built folder: files, links, escaping, atomic writes, bad input, the Neuronpedia export, CLI."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_lens import Lens
from feature_lens.cli import main
from feature_lens.dashboard import Dashboard, build_dashboards
from feature_lens.dashboard import site as site_module
from feature_lens.dashboard.data import feature_slug
from feature_lens.errors import InputError, OutputExistsError
from feature_lens.graph import AttributionGraph
from feature_lens.graph.neuronpedia import to_neuronpedia
from feature_lens.graph.node import feature as feature_node
from feature_lens.outputs import MARKER
from tests.dashboard.conftest import SCRIPT


class Refs(HTMLParser):
    """Collects src/href attributes and the tags used."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def pages(site: Dashboard) -> list[Path]:
    return sorted(site.out.rglob("*.html"))


def test_folder_layout_and_every_link_resolves(site: Dashboard) -> None:
    out = site.out
    assert (out / "index.html").is_file()
    assert (out / "connectome.html").is_file()
    assert {p.name for p in (out / "assets").iterdir()} == {
        "style.css",
        "graph.js",
        "circuitsvis.js",
    }
    features = set(site.features)
    graph_features = {
        feature_node(n.site, n.index)
        for n in site.graph.nodes.values()  # type: ignore[union-attr]
        if n.kind == "feature" and n.index is not None
    }
    assert graph_features <= features
    assert len(list((out / "features").iterdir())) == len(features)
    links = 0
    for page in pages(site):
        parser = Refs()
        parser.feed(page.read_text())
        for ref in parser.refs:
            assert not re.match(r"^(https?:|//|ftp:|ws)", ref), (page, ref)
            assert (page.parent / ref).resolve().is_file(), (page, ref)
            links += 1
    assert links > 3 * len(features)
    index = (out / "index.html").read_text()
    for feature in features:
        assert f'href="features/{feature_slug(feature)}.html"' in index


def test_untrusted_text_is_escaped_in_the_html(site: Dashboard) -> None:
    texts = [p.read_text() for p in pages(site)]
    assert not any("<script>alert" in t or "<img" in t for t in texts)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    shown = [p for p, t in zip(pages(site), texts, strict=True) if escaped in t]
    assert site.out / "connectome.html" in shown
    assert any(p.parent.name == "features" for p in shown)
    # JSON islands: the payload is there, with < > & escaped so it cannot close the script element.
    connectome = (site.out / "connectome.html").read_text()
    island = re.search(
        r'<script type="application/json" id="connectome">(.*?)</script>', connectome, re.S
    )
    assert island is not None
    assert "\\u003cscript\\u003ealert(1)" in island.group(1)
    assert json.loads(island.group(1))["nodes"]


def test_output_exists_is_refused_and_overwrite_replaces(
    site: Dashboard, dash_lens: Lens, prompts: list[str]
) -> None:
    with pytest.raises(OutputExistsError, match="overwrite"):
        build_dashboards(dash_lens, site.out, prompts, progress=False)
    assert main(["dashboard", "--out", str(site.out), "--no-progress"]) == 1


def test_failed_build_leaves_nothing(
    tmp_path: Path, dash_lens: Lens, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "dash"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    (out / MARKER).write_text("{}")  # an earlier build's output, which --overwrite may replace

    def broken(folder: Path, *args: object, **kwargs: object) -> None:
        (folder / "index.html").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(site_module, "write_site", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_dashboards(
            dash_lens,
            out,
            prompts[:6],
            features=["blocks.0.hook_resid_post:1"],
            overwrite=True,
            progress=False,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dash"]
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "keep.txt"]
    monkeypatch.undo()
    result = build_dashboards(
        dash_lens,
        out,
        prompts[:6],
        features=["blocks.0.hook_resid_post:1"],
        overwrite=True,
        progress=False,
    )
    assert not (out / "keep.txt").exists()
    assert result.page(feature_node("blocks.0.hook_resid_post", 1)).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dash"]


def test_bad_input(tmp_path: Path, dash_lens: Lens, prompts: list[str]) -> None:
    with pytest.raises(InputError, match="empty"):
        build_dashboards(dash_lens, tmp_path / "a", [], progress=False)
    with pytest.raises(InputError, match="does not exist"):
        build_dashboards(
            dash_lens,
            tmp_path / "b",
            prompts,
            features=["blocks.0.hook_resid_post:4800"],
            progress=False,
        )
    with pytest.raises(InputError, match="no dictionary"):
        build_dashboards(
            dash_lens,
            tmp_path / "c",
            prompts,
            features=["blocks.7.hook_resid_post:1"],
            progress=False,
        )
    assert not any(tmp_path.iterdir())


def test_neuronpedia_export(dash_graph: AttributionGraph, site: Dashboard) -> None:
    export = to_neuronpedia(dash_graph).model_dump(mode="json")
    data = site.out / "circuit-tracer"
    listed = json.loads((data / "graph-metadata.json").read_text())["graphs"]
    assert [g["slug"] for g in listed] == [export["metadata"]["slug"]]
    saved = json.loads((data / f"{export['metadata']['slug']}.json").read_text())
    assert saved["nodes"] == export["nodes"]
    assert export["metadata"]["prompt_tokens"] == dash_graph.prompts[0]
    assert SCRIPT in export["metadata"]["prompt_tokens"]
    ids = [n["node_id"] for n in export["nodes"]]
    assert len(ids) == len(set(ids)) == len(dash_graph.nodes)
    for node in export["nodes"]:
        assert {
            "node_id",
            "feature",
            "layer",
            "ctx_idx",
            "feature_type",
            "activation",
            "influence",
        } <= set(node)
    by_id = {n.id: n for n in dash_graph.nodes.values()}
    features = [n for n in by_id.values() if n.kind == "feature"]
    exported = {
        (n["node_id"].split("_")[1], n["ctx_idx"])  # node_id = layer_index_pos, as the viewer's
        for n in export["nodes"]
        if n["feature_type"] == "cross layer transcoder"
    }
    assert exported == {(str(n.index), n.pos) for n in features}
    weights = sorted(round(link["weight"], 9) for link in export["links"])
    assert weights == sorted(round(w, 9) for w in dash_graph.edges.values())
    assert all(link["source"] in ids and link["target"] in ids for link in export["links"])
    assert sum(n["is_target_logit"] for n in export["nodes"]) == 1


def test_notebook_views_inline_everything(site: Dashboard) -> None:
    from feature_lens.dashboard.notebook import show_connectome, show_feature

    feature = next(iter(site.features))
    html = show_feature(site, feature)._repr_html_()
    assert html.startswith("<iframe srcdoc=")
    assert "assets/" not in html  # nothing linked: CSS and JS are inlined
    assert "FeatureLens" in html  # graph.js is inside
    assert "&lt;script&gt;" in html  # the document itself is escaped into the attribute
    assert site.graph is not None
    connectome = show_connectome(site.graph)._repr_html_()
    assert "assets/" not in connectome
    assert connectome.count("&quot;s&quot;:") == len(site.graph.edges)
    with pytest.raises(InputError, match="no page"):
        show_feature(site, "blocks.0.hook_resid_post:47")


def test_feature_json_for_the_viewer(site: Dashboard, dash_lens: Lens, prompts: list[str]) -> None:
    """Each feature's viewer JSON against a brute-force run of every prompt on its own."""
    folder = site.out / "circuit-tracer" / "features"
    for feature, data in site.features.items():
        saved = json.loads((folder / feature.site / f"{feature.index}.json").read_text())
        acts = torch.cat(
            [dash_lens.run(p).features[feature.site][0, :, feature.index] for p in prompts]
        )
        positive = acts[acts > 0].double().numpy()
        assert saved["transcoder_id"] == feature.site
        assert saved["index"] == feature.index
        assert data.n_active == len(positive)  # the dashboard's count against brute force
        assert saved["activation_frequency"] == pytest.approx(data.n_active / data.n_tokens)
        want = np.percentile(positive, np.arange(1, 101), method="linear")
        # Read from a histogram of 2**16 bins: within half a bin, plus float32 activations from a
        # batched pass against one prompt at a time (~1e-6 apart).
        bound = float(positive.max()) / 2**17 + 1e-5
        assert np.abs(np.array(saved["quantile_values"]) - want).max() <= bound
        assert sum(saved["histogram"]) == len(positive)
        assert saved["act_max"] == pytest.approx(float(positive.max()), rel=1e-5)
        top = saved["examples_quantiles"][0]
        assert top["quantile_name"] == data.groups[0].title
        for example in top["examples"]:
            window = example["tokens_acts_list"]
            assert len(window) == len(example["tokens"])
            assert window[example["train_token_ind"]] == max(window)
        assert saved["top_logits"] == [t for t, _ in data.top_logits]
