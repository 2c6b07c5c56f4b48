"""Export an `AttributionGraph` as the JSON graph format read by circuit-tracer's frontend and
Neuronpedia's graph viewer (documented in docs/interchange.md).

Mapping (the viewer numbers dictionaries by "layer", one per layer, as circuit-tracer's transcoders):
- "layer" of a feature or error node is the rank of its site among the graph's sites in forward
  order (equal to the block index when there is one dictionary per block); `metadata.transcoder_list`
  lists the sites in that order, so the mapping can be undone;
- feature: `node_id = "{layer}_{index}_{pos}"`, `feature = index`, type "cross layer transcoder";
- error term: `node_id = "0_{layer}_{pos}"`, `feature = -1`, type "mlp reconstruction error";
- token: `node_id = "E_{token_id}_{pos}"`, layer "E", type "embedding" (`token_id` from
  `token_ids`, else the position);
- the metric: one logit node, layer `n_sites + 1`, `is_target_logit = true`, at the last position;
- nodes summed over positions (`pos` None) get `ctx_idx = 0` and say so in `clerp`;
- `influence` is `AttributionGraph.influence()`, `activation` the node's activation; links are the
  graph's edges with their weights.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from feature_lens.errors import OutputExistsError
from feature_lens.graph.graph import AttributionGraph
from feature_lens.graph.table import NodeRecord


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
    supernodes: list[list[str]] = Field(default_factory=list)
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


def to_neuronpedia(
    graph: AttributionGraph,
    *,
    slug: str = "feature-lens-graph",
    token_ids: Sequence[int] | None = None,
) -> NeuronpediaGraph:
    """The graph in circuit-tracer's / Neuronpedia's format (see the module docstring)."""
    sites = sorted(
        {n.site for n in graph.nodes.values() if n.kind in ("feature", "error")},
        key=lambda s: next(n.order for n in graph.nodes.values() if n.site == s),
    )
    rank = {site: i for i, site in enumerate(sites)}
    tokens = graph.prompts[0] if graph.prompts else []
    last = max(len(tokens) - 1, 0)
    influence = graph.influence()
    ids: dict[str, str] = {}
    nodes: list[NeuronpediaNode] = []
    for node in graph.nodes.values():
        converted = _node(node, rank, len(sites), last, token_ids, graph.metric)
        converted.influence = influence.get(node.id)
        converted.activation = node.activation
        ids[node.id] = converted.node_id
        nodes.append(converted)
    links = [
        NeuronpediaLink(source=ids[s], target=ids[t], weight=w) for (s, t), w in graph.edges.items()
    ]
    metadata = NeuronpediaMetadata(
        slug=slug,
        transcoder_list=sites,
        prompt_tokens=tokens,
        prompt="".join(tokens),
        info={"method": graph.method, "metric": graph.metric, "settings": graph.settings},
    )
    return NeuronpediaGraph(metadata=metadata, nodes=nodes, links=links)


def _node(
    node: NodeRecord,
    rank: dict[str, int],
    n_sites: int,
    last: int,
    token_ids: Sequence[int] | None,
    metric: str,
) -> NeuronpediaNode:
    pos = 0 if node.pos is None else node.pos
    summed = " (all positions)" if node.pos is None else ""
    if node.kind == "feature":
        layer = str(rank[node.site])
        index = int(node.index or 0)
        return NeuronpediaNode(
            node_id=f"{layer}_{index}_{pos}",
            feature=index,
            layer=layer,
            ctx_idx=pos,
            feature_type="cross layer transcoder",
            jsNodeId=f"{layer}_{index}-{pos}",
            clerp=f"{node.site}:{index}{summed}",
        )
    if node.kind == "error":
        layer = str(rank[node.site])
        return NeuronpediaNode(
            node_id=f"0_{layer}_{pos}",
            feature=-1,
            layer=layer,
            ctx_idx=pos,
            feature_type="mlp reconstruction error",
            jsNodeId=f"{layer}_{pos}-{pos}",
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
    return NeuronpediaNode(
        node_id=f"{layer}_0_{last}",
        feature=0,
        layer=layer,
        ctx_idx=last,
        feature_type="logit",
        is_target_logit=True,
        jsNodeId=f"L_0-{last}",
        clerp=f"metric {node.label or metric}",
    )


def save_neuronpedia(
    graph: AttributionGraph,
    path: str | Path,
    *,
    slug: str = "feature-lens-graph",
    token_ids: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the export as JSON, atomically; refuse to overwrite unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_neuronpedia(graph, slug=slug, token_ids=token_ids).model_dump(mode="json"))
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
