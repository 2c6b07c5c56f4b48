"""Clusters in the dashboards: a page per cluster listing exactly its members, cluster ids in the
connectome's data, links both ways, and the collapsed connectome drawn in headless Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from feature_lens import Lens
from feature_lens.clustering import cluster_profiles, collapse, connectivity_profiles
from feature_lens.dashboard import Dashboard, build_dashboards
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from tests.dashboard.test_browser import CHROMIUM, visit

K = 3


class Cells(HTMLParser):
    """Rows of the first table after `<h2>Members</h2>`: each cell's text and the links in it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._in_members = False
        self._in_table = False
        self._cell: list[str] | None = None
        self._heading = ""
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_h2, self._heading = True, ""
        elif tag == "table" and self._in_members:
            self._in_table = True
        elif tag == "tr" and self._in_table:
            self.rows.append([])
        elif tag == "td" and self._in_table:
            self._cell = []
        elif tag == "a" and self._in_table:
            self.links += [v for k, v in attrs if k == "href" and v]

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False
            self._in_members = self._heading == "Members"
        elif tag == "table":
            self._in_table = self._in_members = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self.rows and not self.rows[-1]:
            self.rows.pop()  # the header row has no <td>

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def clustered(
    dash_lens: Lens,
    prompts: list[str],
    dash_graph: AttributionGraph,
    tmp_path_factory: pytest.TempPathFactory,
) -> Dashboard:
    out = tmp_path_factory.mktemp("clustered") / "dash"
    return build_dashboards(
        dash_lens,
        out,
        prompts[:12],
        graph=dash_graph,
        clusters=K,
        circuitsvis=False,
        n_neighbour_prompts=1,
        progress=False,
    )


def test_clusters_are_the_connectivity_clustering_of_the_graph(
    clustered: Dashboard, dash_graph: AttributionGraph
) -> None:
    expected = cluster_profiles(connectivity_profiles([dash_graph]), K)
    assert clustered.clusters == expected
    assert set(expected.values()) == set(range(K))
    assert clustered.graph is not None
    for node_id, node in clustered.graph.nodes.items():
        assert node.cluster == expected.get(node_id)
    saved = AttributionGraph.load(clustered.out / "graph.json")
    assert {i: n.cluster for i, n in saved.nodes.items() if n.cluster is not None} == expected


def test_cluster_pages_list_exactly_the_members(clustered: Dashboard) -> None:
    graph = clustered.graph
    assert graph is not None
    pages = sorted(p.name for p in (clustered.out / "clusters").iterdir())
    assert pages == sorted([*(f"{k}.html" for k in range(K)), "collapsed.html"])
    index = (clustered.out / "index.html").read_text()
    for k in range(K):
        page = clustered.cluster_page(k)
        parser = Cells()
        parser.feed(page.read_text())
        members = {i for i, c in clustered.clusters.items() if c == k}
        listed = {(row[0], row[2]) for row in parser.rows}
        expected = {
            (f"{graph.nodes[i].site}:{graph.nodes[i].index}", str(graph.nodes[i].pos))
            for i in members
        }
        assert listed == expected
        assert len(parser.rows) == len(members)
        # Every member links to its feature page, which exists and links back to this cluster.
        assert len(parser.links) == len(members)
        for href in parser.links:
            feature_page = (page.parent / href).resolve()
            assert feature_page.is_file()
            assert f'href="../clusters/{k}.html"' in feature_page.read_text()
        assert f'href="clusters/{k}.html"' in index
        total = sum(graph.nodes[i].effect for i in members)
        assert f"<b>{total:.4g}</b>" in page.read_text()


def test_cluster_pages_show_the_collapsed_edges(
    clustered: Dashboard, dash_graph: AttributionGraph
) -> None:
    collapsed = collapse(dash_graph, clustered.clusters)
    for k in range(K):
        text = clustered.cluster_page(k).read_text()
        into, _, out = text.partition("<h2>Out of this cluster</h2>")
        into = into.partition("<h2>Into this cluster</h2>")[2]
        n_in = sum(1 for (_, t) in collapsed.edges if t == f"cluster:{k}")
        n_out = sum(1 for (s, _) in collapsed.edges if s == f"cluster:{k}")
        assert into.count("<tr>") - 1 == n_in > 0  # minus the header row
        assert out.count("<tr>") - 1 == n_out > 0
        for (s, t), w in collapsed.edges.items():
            if s == f"cluster:{k}" and t.startswith("cluster:"):
                assert f"{w:.4g}" in out


def test_connectome_data_carries_cluster_ids(clustered: Dashboard) -> None:
    text = (clustered.out / "connectome.html").read_text()
    island = re.search(r'<script type="application/json" id="connectome">(.*?)</script>', text)
    assert island is not None
    nodes = json.loads(island.group(1))["nodes"]
    assert {n["id"]: n.get("cluster") for n in nodes} == {
        i: clustered.clusters.get(i)
        for i in clustered.graph.nodes  # type: ignore[union-attr]
    }
    fills = {n["cluster"]: n["fill"] for n in nodes if "cluster" in n}
    assert len(set(fills.values())) == K  # one distinct colour per cluster
    assert all("fill" not in n for n in nodes if "cluster" not in n)
    assert text.count('class="item" data-cluster=') == K  # the legend


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_collapsed_and_coloured_connectomes_render_in_chromium(clustered: Dashboard) -> None:
    collapsed = clustered.collapsed
    assert collapsed is not None
    result = visit(clustered.out / "clusters" / "collapsed.html")
    assert result.console == []
    assert result.requests == []
    assert f'data-rendered="{len(collapsed.edges)}"' in result.dom
    assert result.dom.count('class="node') == len(collapsed.nodes)
    super_nodes = re.findall(r'<g class="node link"[^>]*data-cluster="(\d+)"', result.dom)
    assert sorted(super_nodes) == [str(k) for k in range(K)]  # super-nodes open their page
    result = visit(clustered.out / "connectome.html")
    assert result.console == []
    assert result.dom.count(" data-cluster=") == len(clustered.clusters) + K  # nodes + legend


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_a_collapsed_graph_alone_renders_without_links(
    clustered: Dashboard, tmp_path: Path
) -> None:
    from feature_lens.dashboard.connectome import connectome_page
    from feature_lens.dashboard.pages import SiteInfo

    assert clustered.collapsed is not None
    html = connectome_page(clustered.collapsed, SiteInfo({}, {}), inline_assets=True)
    (tmp_path / "c.html").write_text(html)
    result = visit(tmp_path / "c.html")
    assert result.console == []
    assert result.dom.count('class="node') == len(clustered.collapsed.nodes)
    assert 'class="node link"' not in result.dom  # no pages: no links


def test_clusters_need_a_graph_and_a_sensible_k(
    dash_lens: Lens, prompts: list[str], dash_graph: AttributionGraph, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="need an attribution graph"):
        build_dashboards(dash_lens, tmp_path / "a", prompts, clusters=2, progress=False)
    with pytest.raises(InputError, match="cannot make 1000 clusters"):
        build_dashboards(
            dash_lens, tmp_path / "b", prompts, graph=dash_graph, clusters=1000, progress=False
        )
    with pytest.raises(InputError, match="not a feature node"):
        build_dashboards(
            dash_lens,
            tmp_path / "c",
            prompts,
            graph=dash_graph,
            clusters={"feature:nowhere:0:1": 0},
            progress=False,
        )
    assert not any(tmp_path.iterdir())
