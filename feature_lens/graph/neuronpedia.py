"""Export an `AttributionGraph` as the JSON graph format read by circuit-tracer's frontend and
Neuronpedia's graph viewer (documented in docs/interchange.md), checked against the viewer's own
data-formatting code (`util-cg.js`, run under Node in tests/test_interchange.py).

Mapping (the viewer numbers dictionaries by "layer", one per layer, as circuit-tracer's transcoders):
- "layer" of a feature or error node is the rank of its site among the graph's sites in forward
  order (equal to the block index when there is one dictionary per block); `metadata.transcoder_list`
  lists the sites in that order, so the mapping can be undone;
- feature: `node_id = "{layer}_{index}_{pos}"`, `feature` = the Cantor pairing of (layer, index) —
  the viewer keys a feature's label and hover state on it, so it must differ across layers —
  type "cross layer transcoder";
- error term: `node_id = "err_{layer}_{pos}"`, `feature = -1`, type "mlp reconstruction error"
  (circuit-tracer writes `0_{layer}_{pos}`, which collides with the feature of index `layer` at
  layer 0 and the same position; the viewer treats `node_id` as an opaque key);
- token: `node_id = "E_{token_id}_{pos}"`, layer "E", type "embedding" (`token_id` from
  `token_ids`, else the position);
- the metric: one logit node, layer `n_sites + 1`, `is_target_logit = true`, at the last position,
  `feature` = the answer's vocabulary id (`target_token_id`), and a clerp of the viewer's form
  `Output "<token>" (p=<probability>)` (the viewer parses the token and the probability out of it);
- nodes summed over positions (`pos` None) get `ctx_idx = 0` and say so in `clerp`;
- `influence` is circuit-tracer's cumulative-rank score: nodes sorted by `influence_scores()`
  (largest first), each gets the running share of the total up to and including itself, so the
  viewer's pruning slider ("keep nodes with influence <= t") keeps the smallest set holding a
  fraction t of the influence; `activation` is the node's activation; links are the graph's edges
  with their weights (source's effect on target under the graph's method).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from feature_lens.errors import InputError
from feature_lens.graph.graph import AttributionGraph
from feature_lens.graph.table import NodeRecord
from feature_lens.outputs import write_file
from feature_lens.typed import float_list

GRAPH_METADATA = "graph-metadata.json"


class NeuronpediaMetadata(BaseModel):
    """Graph metadata: the prompt's tokens and where the graph came from."""

    slug: str
    scan: str = "feature-lens"
    transcoder_list: list[str] = Field(default_factory=list)
    prompt_tokens: list[str]
    prompt: str
    node_threshold: float | None = None
    schema_version: int = 1
    info: dict[str, Any] = Field(default_factory=dict)


class NeuronpediaQParams(BaseModel):
    """Viewer state (pinned nodes, supernodes); empty on export."""

    pinnedIds: list[str] = Field(default_factory=list)  # noqa: N815 (the format's field names)
    supernodes: list[list[str]] = Field(default_factory=list[list[str]])
    linkType: str = "both"  # noqa: N815
    clickedId: str = ""  # noqa: N815
    sg_pos: str = ""


class NeuronpediaNode(BaseModel):
    """One node of the viewer's format."""

    node_id: str
    feature: int
    layer: str
    ctx_idx: int
    feature_type: str
    token_prob: float = 0.0
    is_target_logit: bool = False
    run_idx: int = 0
    reverse_ctx_idx: int = 0
    jsNodeId: str  # noqa: N815
    clerp: str = ""
    influence: float | None = None
    activation: float | None = None


class NeuronpediaLink(BaseModel):
    """A weighted link between two `node_id`s."""

    source: str
    target: str
    weight: float


class NeuronpediaGraph(BaseModel):
    """The whole file."""

    metadata: NeuronpediaMetadata
    qParams: NeuronpediaQParams = Field(default_factory=NeuronpediaQParams)  # noqa: N815
    nodes: list[NeuronpediaNode]
    links: list[NeuronpediaLink]


def cantor_pairing(x: int, y: int) -> int:
    """The Cantor pairing of two non-negative integers: a unique integer per (x, y)."""
    return (x + y) * (x + y + 1) // 2 + y


def default_slug(graph: AttributionGraph) -> str:
    """A slug that differs between graphs: the method, then a hash of the prompt, the metric,
    the settings and the node ids (so two graphs of one prompt by two methods do not collide)."""
    blob = json.dumps(
        [graph.method, graph.metric, graph.prompts[:1], sorted(graph.ids), str(graph.settings)],
        default=str,
    )
    return f"feature-lens-{graph.method}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cumulative_influence(graph: AttributionGraph) -> list[float]:
    """Per row, circuit-tracer's cumulative-rank influence (see the module docstring); the metric
    node gets 0 (it is always kept)."""
    scores = graph.influence_scores().clone()
    scores[graph.metric_row] = 0.0
    total = float(scores.sum())
    out = torch.zeros_like(scores)
    if total > 0:
        order = torch.argsort(-scores, stable=True)
        # clamped: rounding can push the last share to 1 + 1e-16, which the slider at 1 would drop
        out[order] = (torch.cumsum(scores[order], 0) / total).clamp_max(1.0)
    out[graph.metric_row] = 0.0
    return float_list(out)


def to_neuronpedia(
    graph: AttributionGraph,
    *,
    slug: str | None = None,
    token_ids: Sequence[int] | None = None,
    target_token_id: int | None = None,
    target_token: str | None = None,
    target_prob: float | None = None,
) -> NeuronpediaGraph:
    """The graph in circuit-tracer's / Neuronpedia's format (see the module docstring).

    Args:
        slug: the graph's name in the viewer (default: `default_slug(graph)`).
        token_ids: the prompt's vocabulary ids (for the embedding nodes' ids).
        target_token_id, target_token, target_prob: the answer the metric reads (vocabulary id,
            its text, its probability on the clean prompt) for the logit node; when unknown the
            id is 0, the text is the metric's name and the probability 0.
    """
    sites = sorted(
        {n.site for n in graph.nodes.values() if n.kind in ("feature", "error")},
        key=lambda s: next(n.order for n in graph.nodes.values() if n.site == s),
    )
    rank = {site: i for i, site in enumerate(sites)}
    tokens = graph.prompts[0] if graph.prompts else []
    last = max(len(tokens) - 1, 0)
    if target_prob is not None and not 0.0 <= target_prob <= 1.0:
        raise InputError(f"target_prob must be a probability in [0, 1], got {target_prob}")
    target = _Target(
        id=0 if target_token_id is None else int(target_token_id),
        text=target_token if target_token is not None else graph.metric,
        prob=0.0 if target_prob is None else float(target_prob),
    )
    influence = cumulative_influence(graph)
    ids: dict[str, str] = {}
    nodes: list[NeuronpediaNode] = []
    for row, node in enumerate(graph.nodes.values()):
        converted = _node(node, rank, len(sites), last, token_ids, target)
        converted.influence = influence[row]
        converted.activation = node.activation
        ids[node.id] = converted.node_id
        nodes.append(converted)
    links = [
        NeuronpediaLink(source=ids[s], target=ids[t], weight=w) for (s, t), w in graph.edges.items()
    ]
    metadata = NeuronpediaMetadata(
        slug=slug or default_slug(graph),
        transcoder_list=sites,
        prompt_tokens=tokens,
        prompt="".join(tokens),
        info={"method": graph.method, "metric": graph.metric, "settings": graph.settings},
    )
    return NeuronpediaGraph(metadata=metadata, nodes=nodes, links=links)


class _Target(BaseModel):
    id: int
    text: str
    prob: float


def _node(
    node: NodeRecord,
    rank: dict[str, int],
    n_sites: int,
    last: int,
    token_ids: Sequence[int] | None,
    target: _Target,
) -> NeuronpediaNode:
    pos = 0 if node.pos is None else node.pos
    summed = " (all positions)" if node.pos is None else ""
    if node.kind == "feature":
        layer = rank[node.site]
        index = int(node.index or 0)
        return NeuronpediaNode(
            node_id=f"{layer}_{index}_{pos}",
            feature=cantor_pairing(layer, index),
            layer=str(layer),
            ctx_idx=pos,
            feature_type="cross layer transcoder",
            jsNodeId=f"{layer}_{index}-0",
            clerp=node.label or f"{node.site}:{index}{summed}",
        )
    if node.kind == "error":
        layer = str(rank[node.site])
        return NeuronpediaNode(
            node_id=f"err_{layer}_{pos}",
            feature=-1,
            layer=layer,
            ctx_idx=pos,
            feature_type="mlp reconstruction error",
            jsNodeId=f"{layer}_{pos}-0",
            clerp=f"error term at {node.site}{summed}",
        )
    if node.kind == "token":
        vocab = token_ids[pos] if token_ids is not None and pos < len(token_ids) else pos
        return NeuronpediaNode(
            node_id=f"E_{vocab}_{pos}",
            feature=pos,
            layer="E",
            ctx_idx=pos,
            feature_type="embedding",
            jsNodeId=f"E_{vocab}-{pos}",
        )
    layer = str(n_sites + 1)
    text = target.text.replace('"', "'")  # the viewer cuts the token out between double quotes
    return NeuronpediaNode(
        node_id=f"{layer}_{target.id}_{last}",
        feature=target.id,
        layer=layer,
        ctx_idx=last,
        feature_type="logit",
        token_prob=target.prob,
        is_target_logit=True,
        jsNodeId=f"L_{target.id}-{last}",
        clerp=f'Output "{text}" (p={target.prob:.3f})',
    )


def save_neuronpedia(
    graph: AttributionGraph,
    path: str | Path,
    *,
    slug: str | None = None,
    token_ids: Sequence[int] | None = None,
    overwrite: bool = False,
    **target: Any,
) -> Path:
    """Write the export as one JSON file, atomically; refuse to overwrite unless asked.
    `target` takes `to_neuronpedia`'s target_token_id / target_token / target_prob."""
    export = to_neuronpedia(graph, slug=slug, token_ids=token_ids, **target)
    return write_file(path, json.dumps(export.model_dump(mode="json")), overwrite=overwrite)


def write_graph_files(
    graph: AttributionGraph,
    folder: str | Path,
    *,
    slug: str | None = None,
    token_ids: Sequence[int] | None = None,
    overwrite: bool = False,
    **target: Any,
) -> Path:
    """Write `<slug>.json` into `folder` and add the graph to `folder/graph-metadata.json` (the
    list the viewer's prompt menu reads; other graphs' entries are kept, an entry with the same
    slug replaced), as circuit-tracer's `create_graph_files` lays out a data folder. Serve the
    folder with circuit-tracer's local server (docs/interchange.md). Returns the graph file."""
    folder = Path(folder)
    export = to_neuronpedia(graph, slug=slug, token_ids=token_ids, **target)
    name = export.metadata.slug
    if not name or "/" in name or name.startswith("."):
        raise InputError(f"slug {name!r} must be a plain file name (no '/', no leading '.')")
    path = write_file(
        folder / f"{name}.json", json.dumps(export.model_dump(mode="json")), overwrite=overwrite
    )
    index = folder / GRAPH_METADATA
    graphs: list[dict[str, Any]] = []
    if index.exists():
        try:
            graphs = list(json.loads(index.read_text(encoding="utf-8"))["graphs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(
                f"{str(index)!r} is not a graph-metadata file ({exc}); move it away and retry"
            ) from None
    entry = export.metadata.model_dump(mode="json")
    graphs = [g for g in graphs if g.get("slug") != name] + [entry]
    write_file(index, json.dumps({"graphs": graphs}, indent=1), overwrite=True)
    return path
