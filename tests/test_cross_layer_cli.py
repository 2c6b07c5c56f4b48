"""A cross-layer transcoder where it meets the rest of feature-lens: `--sae CLT_FOLDER` in the CLI,
a graph saved by `attribute` read by `dashboard --graph`, `cluster`, `export` and serve's store,
and dashboard pages of CLT features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feature_lens.cli import main
from feature_lens.graph import AttributionGraph
from tests.circuit_tracer_clt_format import write_clt
from tests.test_loading import _save_gpt2_folder

SITES = {"blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("clt-cli")
    _save_gpt2_folder(root / "gpt2-tiny", root / "tok")
    write_clt(root / "clt", n_layers=2, d_model=32, model_name="gpt2-tiny", seed=2)
    lens_args = [
        "--model", str(root / "gpt2-tiny"), "--sae", str(root / "clt"),
        "--no-fold-ln", "--no-center-writing-weights", "--no-center-unembed",
    ]  # fmt: skip
    return root, lens_args


@pytest.fixture(scope="module")
def graph_file(folders: tuple[Path, list[str]]) -> Path:
    root, lens_args = folders
    out = root / "graph.json"
    args = [
        "attribute", *lens_args,
        "--prompt", "w1 w2 w3 w4 w5", "--corrupted", "w1 w2 w9 w4 w5",
        "--correct", "w6", "--wrong", "w7", "--method", "attribution", "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    return out


def test_info_lists_one_site_per_layer(
    folders: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, lens_args = folders
    assert main(["info", *lens_args]) == 0
    out = capsys.readouterr().out
    assert out.count("cross_layer_transcoder") == 2
    assert out.count("CrossLayerSite") == 2
    assert all(site in out for site in SITES)


def test_attribute_graph_has_cross_layer_edges(graph_file: Path) -> None:
    graph = AttributionGraph.load(graph_file)
    sites = {n.site for n in graph.nodes.values() if n.kind == "feature"}
    assert sites <= SITES
    assert "blocks.0.hook_mlp_out" in sites
    layer0 = {k for k, n in graph.nodes.items() if n.site == "blocks.0.hook_mlp_out"}
    layer1 = {
        k
        for k, n in graph.nodes.items()
        if n.site == "blocks.1.hook_mlp_out" and n.kind == "feature"
    }
    assert any(u in layer0 and d in layer1 for u, d in graph.edges)


def test_graph_feeds_cluster_export_serve_and_dashboard(
    folders: tuple[Path, list[str]], graph_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, lens_args = folders
    clustered = root / "clustered.json"
    assert main(["cluster", str(graph_file), "-k", "2", "--out", str(clustered)]) == 0
    annotated = AttributionGraph.load(clustered)
    assert {n.cluster for n in annotated.nodes.values() if n.kind == "feature"} <= {0, 1}

    exported = root / "export"
    assert main(["export", str(graph_file), "--out", str(exported), "--slug", "clt-graph"]) == 0
    data = json.loads((exported / "clt-graph.json").read_text())
    layers = {
        str(n["layer"]) for n in data["nodes"] if n["feature_type"] == "cross layer transcoder"
    }
    assert layers <= {"0", "1"}
    assert layers

    from feature_lens.serve.store import GraphMeta, GraphStore

    store = GraphStore(root / "store")
    graph = AttributionGraph.load(graph_file)
    meta = GraphMeta(
        id="", prompt="w1 w2 w3 w4 w5", method="attribution", metric="logit", created=0
    )
    graph_id = store.add(graph, meta)
    reloaded = GraphStore(root / "store").graph(graph_id)
    assert reloaded.nodes.keys() == graph.nodes.keys()

    corpus = root / "corpus.txt"
    corpus.write_text("".join(f"w{i} w{i + 1} w{i + 2} w3 w<script>\n" for i in range(1, 20)))
    out = root / "dash"
    args = [
        "dashboard", *lens_args, "--prompts", str(corpus), "--graph", str(graph_file),
        "--top-k", "2", "--out", str(out), "--no-cache", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    pages = sorted(out.rglob("*.html"))
    page_text = "\n".join(p.read_text() for p in pages)
    assert "blocks.0.hook_mlp_out" in page_text
    assert "w<script>" not in page_text


@pytest.mark.parametrize("method", ["exact", "ig", "direct"])
def test_every_method_builds_a_clt_graph(folders: tuple[Path, list[str]], method: str) -> None:
    root, lens_args = folders
    out = root / f"graph-{method}.json"
    args = [
        "attribute", *lens_args,
        "--prompt", "w1 w2 w3 w4 w5", "--corrupted", "w1 w2 w9 w4 w5",
        "--correct", "w6", "--wrong", "w7", "--method", method, "--max-nodes", "20",
        "--out", str(out),
    ]  # fmt: skip
    assert main(args) == 0
    graph = AttributionGraph.load(out)
    features = [n for n in graph.nodes.values() if n.kind == "feature"]
    assert features
    assert {n.site for n in features} <= SITES
    assert graph.edges
