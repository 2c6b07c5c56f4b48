"""The circuit-tracer / Neuronpedia export, read by circuit-tracer's own viewer code.

`util-cg.js` (circuit-tracer 0.5.0's frontend data formatting) runs under Node on graphs written by
`feature-lens export` from `feature-lens attribute` output, and on a graph with a steering
direction; what the viewer keeps and parses is compared with the graph itself. The viewer's source
comes from circuit-tracer's wheel, which the README's test command downloads from the package
registry (`FEATURE_LENS_CIRCUIT_TRACER_WHEEL`); nothing is vendored.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from feature_lens.attribution import LogitDiff, PromptSet, attribute
from feature_lens.cli import main
from feature_lens.graph import AttributionGraph
from feature_lens.graph.neuronpedia import cantor_pairing, to_neuronpedia, write_graph_files
from feature_lens.lens import Directions, Lens
from feature_lens.zoo import task_prompts

HARNESS = Path(__file__).with_name("viewer_harness.js")


@pytest.fixture(scope="module")
def util_cg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = os.environ.get("FEATURE_LENS_CIRCUIT_TRACER_WHEEL")
    node = shutil.which("node")
    if not wheel or not Path(wheel).is_file() or node is None:
        pytest.skip(
            "needs node and circuit-tracer 0.5.0's wheel in FEATURE_LENS_CIRCUIT_TRACER_WHEEL "
            "(bash scripts/test.sh downloads it)"
        )
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith("attribution_graph/util-cg.js"))
        target = tmp_path_factory.mktemp("viewer") / "util-cg.js"
        target.write_bytes(archive.read(name))
    return target


def run_viewer(util_cg: Path, graph_file: Path, threshold: float) -> dict[str, Any]:
    out = subprocess.run(
        ["node", str(HARNESS), str(util_cg), str(graph_file), str(threshold)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def cumulative_by_hand(graph: AttributionGraph) -> dict[str, float]:
    """circuit-tracer's cumulative-rank influence, from the graph's influence with plain Python."""
    metric = graph.metric_node.id
    scores = {i: s for i, s in graph.influence().items() if i != metric}
    total = sum(scores.values())
    out, running = {metric: 0.0}, 0.0
    for node_id in sorted(scores, key=lambda i: -scores[i]):
        running += scores[node_id]
        out[node_id] = running / total
    return out


@pytest.fixture(scope="module")
def zoo() -> Lens:
    return Lens.load()


@pytest.fixture(scope="module")
def cli_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "ioi.json"
    args = ["attribute", "--task", "ioi", "-n", "2", "--max-nodes", "24", "--out", str(path)]
    assert main(args) == 0
    return path


def test_viewer_reads_the_cli_export(util_cg: Path, cli_graph: Path, tmp_path: Path) -> None:
    graph = AttributionGraph.load(cli_graph)
    data = tmp_path / "data"
    args = ["export", str(cli_graph), "--out", str(data), "--target-token", "mary"]
    assert main([*args, "--target-token-id", "17", "--target-prob", "0.625"]) == 0
    (listed,) = json.loads((data / "graph-metadata.json").read_text())["graphs"]
    export = json.loads((data / f"{listed['slug']}.json").read_text())
    assert listed == export["metadata"]
    by_export = {n["node_id"]: n for n in export["nodes"]}
    assert len(by_export) == len(export["nodes"]) == len(graph.nodes)  # node ids are unique

    viewed = run_viewer(util_cg, data / f"{listed['slug']}.json", threshold=1.0)
    assert sorted(viewed["nodes"]) == sorted(by_export)  # nothing dropped at threshold 1
    assert len(set(viewed["featureIds"])) == len(viewed["nodes"])  # no two nodes share an id
    assert viewed["logitPct"] == 0.625
    assert viewed["logitToken"] == "mary"
    assert len(viewed["links"]) == graph.n_edges
    want = sorted(round(w, 9) for w in graph.edges.values())
    assert sorted(round(w, 9) for _, _, w in viewed["links"]) == want

    # influence is the cumulative-rank score; the viewer's slider keeps exactly the nodes at or
    # below it (plus tokens and the logit), i.e. the most influential ones first
    expected = cumulative_by_hand(graph)
    ids = list(graph.nodes)
    for node_id, node in zip(ids, export["nodes"], strict=True):
        assert node["influence"] == pytest.approx(expected[node_id], abs=1e-12)
    pruned = run_viewer(util_cg, data / f"{listed['slug']}.json", threshold=0.5)
    kept = {
        n["node_id"]
        for n in export["nodes"]
        if n["feature_type"] in ("embedding", "logit") or n["influence"] <= 0.5
    }
    assert set(pruned["nodes"]) == kept
    assert len(kept) < len(by_export)


def test_features_are_keyed_per_layer(cli_graph: Path) -> None:
    graph = AttributionGraph.load(cli_graph)
    export = to_neuronpedia(graph)
    sites = export.metadata.transcoder_list
    for record, node in zip(graph.nodes.values(), export.nodes, strict=True):
        if record.kind == "feature":
            layer = sites.index(record.site)
            assert node.layer == str(layer)
            assert node.feature == cantor_pairing(layer, int(record.index or 0))
    pairs = {(a, b): cantor_pairing(a, b) for a in range(30) for b in range(30)}
    assert len(set(pairs.values())) == len(pairs)  # the pairing is one-to-one


def test_slugs_differ_and_the_metadata_list_accumulates(zoo: Lens, tmp_path: Path) -> None:
    prompts = PromptSet.from_task(zoo, "ioi", 1)
    a = attribute(zoo, prompts, LogitDiff(), method="attribution", max_nodes=8, progress=False)
    b = attribute(zoo, prompts, LogitDiff(), method="direct", max_nodes=8, progress=False)
    write_graph_files(a, tmp_path)
    write_graph_files(b, tmp_path)
    write_graph_files(a, tmp_path, overwrite=True)  # the same slug again: replaced, not added
    slugs = [
        g["slug"] for g in json.loads((tmp_path / "graph-metadata.json").read_text())["graphs"]
    ]
    assert len(slugs) == 2
    assert len(set(slugs)) == 2
    assert {f"{s}.json" for s in slugs} <= {p.name for p in tmp_path.iterdir()}


def test_viewer_reads_a_graph_with_a_direction(util_cg: Path, zoo: Lens, tmp_path: Path) -> None:
    hook = "blocks.1.hook_resid_post"
    pairs = task_prompts("ioi", 8)  # the task's own steering vector, so it carries the metric
    direction = Directions.from_mean_difference(zoo, hook, pairs.clean, pairs.corrupted)
    lens = Lens(zoo.model, [*zoo.dictionaries.values(), direction])
    prompts = PromptSet.from_task(lens, "ioi", 1)
    graph = attribute(lens, prompts, LogitDiff(), max_nodes=40, progress=False)
    assert any(":" in n.site for n in graph.nodes.values() if n.kind == "feature")
    path = write_graph_files(graph, tmp_path)
    viewed = run_viewer(util_cg, path, threshold=1.0)
    assert len(viewed["nodes"]) == len(graph.nodes)
    assert len(viewed["links"]) == graph.n_edges


def test_bad_slug_and_target_are_refused(cli_graph: Path, tmp_path: Path) -> None:
    graph = AttributionGraph.load(cli_graph)
    from feature_lens.errors import InputError

    with pytest.raises(InputError, match="plain file name"):
        write_graph_files(graph, tmp_path, slug="../escape")
    with pytest.raises(InputError, match="probability"):
        to_neuronpedia(graph, target_prob=1.5)
    assert main(["export", str(cli_graph), "--out", str(cli_graph)]) == 1
