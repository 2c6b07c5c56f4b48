"""Build a dashboard folder: `index.html`, one page per feature under `features/`, the connectome
view, the graph as JSON (feature-lens and Neuronpedia formats), and shared assets written once.
With clusters, also a page per cluster under `clusters/` and the collapsed connectome.

The folder is built in a temporary sibling and swapped into place in one step at the end
(`feature_lens.outputs.atomic_folder`), so an interrupted or failed build never leaves a
half-written site, and an existing folder is replaced only with `overwrite=True` and only if an
earlier feature-lens build wrote it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from feature_lens.dashboard.clusters import (
    Cluster,
    check_clusters,
    cluster_graph,
    cluster_page,
    cluster_path,
    clusters_of,
    clusters_section,
    placed,
)
from feature_lens.dashboard.connectome import connectome_page, top_token_label
from feature_lens.dashboard.data import (
    Dataset,
    FeatureData,
    corpus_pass,
    feature_index,
    feature_label,
    logit_effects,
    page_data,
    parse_feature,
    prepare_dataset,
    top_features,
)
from feature_lens.dashboard.html import ASSET_NAMES, asset_text
from feature_lens.dashboard.neighbours import Neighbours, UpstreamMethod, neighbours
from feature_lens.dashboard.page_stats import PageSpec
from feature_lens.dashboard.pages import SiteInfo, feature_page, feature_path, index_page
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from feature_lens.graph.node import Node
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import EMBED_SITE, Lens
from feature_lens.outputs import atomic_folder, check_folder_target

if TYPE_CHECKING:
    from feature_lens.distributed.executor import Executor


@dataclass
class Dashboard:
    """What `build_dashboards` computed (also returned so notebooks can render views inline)."""

    out: Path
    features: dict[Node, FeatureData]
    neighbours: dict[Node, Neighbours]
    info: SiteInfo
    graph: AttributionGraph | None = None
    timings: dict[str, float] = field(default_factory=dict[str, float])
    clusters: dict[str, int] = field(default_factory=dict[str, int])
    """Graph node id -> cluster id (empty without clusters); `graph` carries them as well."""
    collapsed: AttributionGraph | None = None
    """The graph with one super-node per cluster (`feature_lens.clustering.collapse`)."""

    def cluster_page(self, k: int) -> Path:
        """Cluster `k`'s page."""
        return self.out / cluster_path(k)

    @property
    def index(self) -> Path:
        """The index page."""
        return self.out / "index.html"

    def page(self, feature: Node) -> Path:
        """A feature's page."""
        return self.out / feature_path(feature)


def site_info(lens: Lens, pages: set[Node], *, has_connectome: bool, title: str) -> SiteInfo:
    """Forward order and layer of every site of the Lens (and the token pseudo-site)."""
    order = {site: lens.site_order(site) for site in lens.sites}
    layer = {site: lens.site_layer(site) for site in lens.sites}
    order[EMBED_SITE], layer[EMBED_SITE] = -1, -1
    return SiteInfo(order, layer, pages, has_connectome, title)


def check_finite_weights(lens: Lens) -> None:
    """Raise if the model or a dictionary has NaN or infinite weights (they would make every
    activation NaN, and every feature look dead)."""
    sources: list[tuple[str, Any]] = [("the model", lens.model)]
    sources += [
        (f"the dictionary at {site!r}", d.sae) for site, d in lens.dictionaries.items() if d.sae
    ]
    for what, module in sources:
        for name, tensor in module.named_parameters():
            if not bool(torch.isfinite(tensor).all()):
                raise InputError(
                    f"{what} has non-finite weights (NaN or inf) in {name!r}; retrain it or load "
                    "an undamaged copy"
                )
    for site, d in lens.dictionaries.items():
        if not bool(torch.isfinite(d.W_dec).all()):
            raise InputError(f"the directions at {site!r} are non-finite (NaN or inf)")


def choose_features(
    lens: Lens,
    dataset: Dataset,
    *,
    features: Sequence[Node | str] = (),
    top_k: int | None = None,
    graph: AttributionGraph | None = None,
    batch_size: int = 64,
    progress: bool = False,
    cache_dir: str | Path | None = None,
    density: Mapping[str, torch.Tensor] | None = None,
) -> list[Node]:
    """The union, in order, of an explicit list, every feature in `graph`, and the `top_k` per site
    by activation density (dead and near-always-on features skipped). Unknown ids raise.
    `density`: the densities when already known (else the corpus pass computes them)."""
    chosen: list[Node] = []
    for item in features:
        feature = parse_feature(item) if isinstance(item, str) else item
        d_sae = lens.dictionary(feature.site).d_sae
        if not 0 <= feature_index(feature) < d_sae:
            raise InputError(
                f"feature {feature_label(feature)} does not exist: {feature.site!r} has features 0..{d_sae - 1}"
            )
        chosen.append(feature)
    if graph is not None:
        for node in graph.nodes.values():
            if node.kind == "feature" and node.index is not None:
                lens.dictionary(node.site)
                chosen.append(feature_node(node.site, node.index))
    if top_k is not None:
        if density is None:
            density = corpus_pass(
                lens,
                dataset,
                lambda _: [],
                cache_dir=cache_dir,
                batch_size=batch_size,
                progress=progress,
            ).density
        chosen += top_features(dict(density), top_k)
    return list(dict.fromkeys(chosen))


def build_dashboards(
    lens: Lens,
    out: str | Path,
    prompts: Sequence[str] | Sequence[torch.Tensor] | torch.Tensor,
    *,
    features: Sequence[Node | str] = (),
    top_k: int | None = None,
    graph: AttributionGraph | None = None,
    clusters: int | Mapping[str, int] | None = None,
    method: UpstreamMethod = "attribution",
    overwrite: bool = False,
    n_neighbour_prompts: int = 4,
    batch_size: int = 64,
    circuitsvis: bool = True,
    title: str = "feature-lens dashboards",
    notes: Sequence[str] = (),
    progress: bool = True,
    cache_dir: str | Path | None = None,
    executor: Executor | None = None,
) -> Dashboard:
    """Build the dashboard folder `out` for `lens` over `prompts` (texts, or token ids as a
    tensor or a list of 1-D tensors of any lengths).

    Features: `features` (ids or "SITE:INDEX"), every feature of `graph`, and the `top_k` per site
    by density; with none of the three, `top_k=8`. `method` is how upstream weights are computed
    ("attribution" or "direct"; downstream weights are exact). With `graph`, a connectome view and
    the graph's JSON (feature-lens and Neuronpedia formats) are written too.

    `clusters` (needs `graph`): a number K, to cluster the graph's feature nodes by connectivity
    into K clusters (`feature_lens.dashboard.clusters.cluster_graph`), or a mapping of the graph's
    feature node ids to cluster ids. The graph's nodes are annotated with them (the connectome is
    coloured by cluster) and each cluster gets a page, linked from the index and its members' pages,
    with its edges in the collapsed graph (also drawn, one super-node per cluster).

    `cache_dir`: where to keep the corpus passes' results between builds (keyed by model,
    dictionaries and corpus; see `feature_lens.dashboard.cache`); None: no cache.

    `executor`: where the corpus pass runs (`feature_lens.distributed`; None: this process). The
    pages are the same either way.
    """
    out = check_folder_target(out, overwrite=overwrite)
    if method not in ("attribution", "direct"):
        raise InputError(
            f"method for feature pages must be 'attribution' or 'direct', got {method!r}"
        )
    check_finite_weights(lens)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    assignment: dict[str, int] = {}
    collapsed: AttributionGraph | None = None
    if clusters is not None:
        if graph is None:
            raise InputError(
                "clusters need an attribution graph: pass graph= (the CLI's task graph or --graph)"
            )
        from feature_lens.clustering import annotate, collapse

        assignment = (
            cluster_graph(graph, clusters)
            if isinstance(clusters, int)
            else check_clusters(graph, clusters)
        )
        graph = annotate(graph, assignment)
        collapsed = collapse(graph, assignment)
        timings["clusters"] = time.perf_counter() - start
    dataset = prepare_dataset(lens, prompts)
    if not features and graph is None and top_k is None:
        top_k = 8

    def choose(density: dict[str, torch.Tensor]) -> list[Node]:
        return choose_features(
            lens,
            dataset,
            features=features,
            top_k=top_k,
            graph=graph,
            batch_size=batch_size,
            progress=progress,
            density=density,
        )

    result = corpus_pass(
        lens,
        dataset,
        choose,
        cache_dir=cache_dir,
        batch_size=batch_size,
        progress=progress,
        executor=executor,
        spec=PageSpec(n_heavy=max(n_neighbour_prompts, 0)),
    )
    chosen, stats, moments = result.features, result.stats, result.moments
    if not chosen:
        raise InputError("no features to show: every candidate feature is dead on this dataset")
    timings["select"] = time.perf_counter() - start
    timings["activations"] = time.perf_counter() - start
    tables = {
        feature_node(site, index): t
        for site in moments.sites
        for index, t in moments.tables(site, lens.dictionary(site).W_dec).items()
    }
    logits = logit_effects(lens, chosen)
    datas: dict[Node, FeatureData] = {}
    for feature in tqdm(chosen, desc="summaries", disable=not progress, unit="feature"):
        data = page_data(dataset, feature, stats[feature])
        effect = logits[feature]
        data.top_logits, data.bottom_logits = effect.top, effect.bottom
        data.logit_hist_edges, data.logit_hist_counts = effect.hist_edges, effect.hist_counts
        data.tables = tables.get(feature)
        datas[feature] = data
    timings["summaries"] = time.perf_counter() - start
    nbs = neighbours(
        lens,
        dataset,
        {f: s.strongest_prompts() for f, s in stats.items()},
        method=method,
        n_prompts=n_neighbour_prompts,
        batch_size=32,
        progress=progress,
    )
    timings["neighbours"] = time.perf_counter() - start
    info = site_info(lens, set(chosen), has_connectome=graph is not None, title=title)
    groups: list[Cluster] = []
    if graph is not None and collapsed is not None:
        groups = clusters_of(graph, collapsed, assignment)
        info.cluster_pages = {c.k for c in groups}
        for node_id, k in assignment.items():
            node = graph.nodes[node_id]
            if node.index is not None:
                info.clusters.setdefault(feature_node(node.site, node.index), []).append(
                    (k, node.pos)
                )
    with atomic_folder(out, overwrite=overwrite, kind="dashboard") as tmp:
        write_site(
            tmp,
            datas,
            nbs,
            info,
            dataset,
            graph=graph,
            collapsed=collapsed,
            clusters=groups,
            notes=notes,
            circuitsvis=circuitsvis,
            progress=progress,
        )
    timings["total"] = time.perf_counter() - start
    return Dashboard(out, datas, nbs, info, graph, timings, assignment, collapsed)


def cv_props(dataset: Dataset, data: FeatureData) -> dict[str, Any] | None:
    """circuitsvis ColoredTokens props for the feature's strongest prompt (all its tokens)."""
    if not data.groups or not data.groups[0].examples:
        return None
    prompt = data.groups[0].examples[0].prompt
    return {
        "tokens": dataset.str_tokens[prompt],
        "values": [round(a, 4) for a in data.strongest],
    }


def write_site(
    folder: Path,
    datas: dict[Node, FeatureData],
    nbs: dict[Node, Neighbours],
    info: SiteInfo,
    dataset: Dataset,
    *,
    graph: AttributionGraph | None = None,
    collapsed: AttributionGraph | None = None,
    clusters: Sequence[Cluster] = (),
    notes: Sequence[str] = (),
    circuitsvis: bool = True,
    progress: bool = False,
) -> None:
    """Write every file of the site into `folder` (an empty folder)."""
    (folder / "assets").mkdir()
    (folder / "features").mkdir()
    for name in ASSET_NAMES:
        if name == "circuitsvis.js" and not circuitsvis:
            continue
        (folder / "assets" / name).write_text(asset_text(name), encoding="utf-8")
    for feature, data in tqdm(datas.items(), desc="pages", disable=not progress, unit="page"):
        props = cv_props(dataset, data) if circuitsvis else None
        html = feature_page(data, nbs.get(feature), info, circuitsvis_props=props)
        (folder / feature_path(feature)).write_text(html, encoding="utf-8")
    extra = clusters_section(list(clusters), info, graph.metric) if graph and clusters else ""
    (folder / "index.html").write_text(
        index_page(list(datas.values()), info, notes, extra=extra), encoding="utf-8"
    )
    if graph is not None and collapsed is not None:
        (folder / "clusters").mkdir()
        for cluster in clusters:
            (folder / cluster_path(cluster.k)).write_text(
                cluster_page(cluster, graph, collapsed, info), encoding="utf-8"
            )
        (folder / "clusters" / "collapsed.html").write_text(
            connectome_page(
                placed(collapsed, clusters),
                info,
                root="../",
                title="Collapsed connectome",
                nav=[("connectome", "../connectome.html")],
                layout="columns",
            ),
            encoding="utf-8",
        )
        collapsed.save(folder / "graph.collapsed.json")
    if graph is not None:
        from feature_lens.graph.neuronpedia import write_graph_files

        nav = [("collapsed connectome", "clusters/collapsed.html")] if collapsed else []
        (folder / "connectome.html").write_text(
            connectome_page(graph, info, nav=nav, labels=feature_labels(datas)), encoding="utf-8"
        )
        graph.save(folder / "graph.json")
        write_graph_files(graph, folder / "circuit-tracer")
    write_feature_files(folder / "circuit-tracer" / "features", datas)


def write_feature_files(folder: Path, datas: Mapping[Node, FeatureData]) -> None:
    """Each feature's data as the viewer's feature JSON (`<folder>/<site>/<index>.json`;
    feature_lens.dashboard.feature_json)."""
    from feature_lens.dashboard.feature_json import to_feature_json

    for feature, data in datas.items():
        export = to_feature_json(data)
        path = folder / feature.site / f"{feature.index}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(export.model_dump_json(), encoding="utf-8")


def feature_labels(datas: Mapping[Node, FeatureData]) -> dict[Node, str]:
    """Each feature named by its top token (`#index 'token'`), for the connectome's labels."""
    return {f: top_token_label(f, d.top_logits) for f, d in datas.items()}


def task_graph(
    lens: Lens,
    task: str,
    *,
    n_prompts: int = 16,
    method: str = "attribution",
    max_nodes: int = 48,
    progress: bool = True,
) -> AttributionGraph:
    """The attribution graph of one planted task of the embedded model (logit difference between
    the correct and the competing answer, corrupted prompts as the baseline, positions kept)."""
    from feature_lens.attribution import METHODS, LogitDiff, PromptSet, attribute
    from feature_lens.zoo import TASKS, task_prompts

    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    pairs = task_prompts(task, n_prompts)
    prompts = PromptSet.build(
        lens, pairs.clean, pairs.corrupted, answers=torch.stack([pairs.correct, pairs.wrong], 1)
    )
    return attribute(
        lens,
        prompts,
        LogitDiff(),
        method=method,
        positions="keep",
        max_nodes=max_nodes,
        progress=progress,  # type: ignore[arg-type]
    )
