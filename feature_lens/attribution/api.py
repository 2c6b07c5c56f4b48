"""`attribute`: run one of the three methods over a prompt set and return an `AttributionGraph`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.baselines import BaselineKind, baseline_values, node_values
from feature_lens.attribution.direct import MlpMode, direct_edges, direct_node_effects
from feature_lens.attribution.exact import exact_edges, exact_node_effects
from feature_lens.attribution.gradients import (
    gradient_edges,
    gradient_node_effects,
    integrated_gradient_node_effects,
)
from feature_lens.attribution.metrics import Metric, NodeActivation, evaluate
from feature_lens.attribution.nodes import METRIC_NODE, Node
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import Positions, PromptState, candidate_nodes
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, NodeRecord
from feature_lens.lens import EMBED_SITE, Lens, RunPlan

Method = Literal["exact", "attribution", "ig", "direct"]
METHODS: tuple[Method, ...] = ("exact", "attribution", "ig", "direct")


def attribute(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    *,
    method: Method = "attribution",
    baseline: BaselineKind | None = None,
    positions: Positions = "keep",
    mean_tokens: Tensor | None = None,
    max_nodes: int = 64,
    node_threshold: float = 0.0,
    edges: bool = True,
    ig_steps: int = 16,
    mlp: MlpMode = "stop",
    batch_size: int = 64,
    progress: bool = True,
) -> AttributionGraph:
    """Attribute `metric` to the Lens's nodes with `method`, keep the strongest, connect them.

    Args:
        method: "exact" (activation patching), "attribution" (first-order attribution patching),
            "ig" (integrated gradients for node effects, attribution patching for edges), or
            "direct" (direct attribution in the frozen linear model; see feature_lens.attribution.direct).
        baseline: "corrupted" (default when corrupted prompts are given), "zero" (default otherwise),
            or "mean" (over `mean_tokens`).
        positions: "keep" (a node per position) or "sum" (a node per feature, all positions at once).
        max_nodes: nodes kept in the graph, by |effect| (averaged over prompts).
        node_threshold: also drop nodes whose |effect| is below this.
        edges: compute edges between kept nodes (with the same method), not only node effects.
        ig_steps: integration steps for "ig".
        mlp: for "direct": "stop" (MLPs held) or "linear" (MLPs linearised).
        batch_size: interventions (exact) or targets (edges) per forward pass.
    Returns:
        The graph: node effects are means over prompts; edge weights too.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if positions not in ("keep", "sum"):
        raise InputError(f"positions must be 'keep' or 'sum', got {positions!r}")
    if max_nodes < 1 or batch_size < 1:
        raise InputError("max_nodes and batch_size must be at least 1")
    if not lens.sites:
        raise InputError("the Lens has no dictionaries to attribute to")
    if isinstance(metric, NodeActivation):
        dictionary = lens.dictionary(metric.node.site)
        index = metric.node.index
        if index is None or not 0 <= index < dictionary.d_sae:
            raise InputError(
                f"feature index {index} is out of range for {metric.node.site!r} "
                f"(d_sae = {dictionary.d_sae})"
            )
        if metric.node.pos is not None and not -prompts.n_pos <= metric.node.pos < prompts.n_pos:
            raise InputError(
                f"position {metric.node.pos} is outside the prompts' {prompts.n_pos} tokens"
            )
    kind: BaselineKind = baseline or ("corrupted" if prompts.corrupted is not None else "zero")
    base = baseline_values(lens, prompts, kind, mean_tokens=mean_tokens)
    clean = node_values(lens, prompts.clean)
    n = len(prompts)
    states = [
        PromptState(
            prompts.clean[i : i + 1],
            None if prompts.answers is None else prompts.answers[i : i + 1],
            clean.row(i),
            base.row(i) if base.embeddings.shape[0] == n and n > 1 else base.row(0),
        )
        for i in range(n)
    ]

    effects: dict[Node, float] = defaultdict(float)
    activations: dict[Node, float] = defaultdict(float)
    metric_clean, metric_base = _metric_values(lens, prompts, metric, states)
    for state in tqdm(states, desc=f"{method}: nodes", disable=not progress):
        nodes = candidate_nodes(lens, state, positions)
        scores = _node_effects(lens, state, metric, nodes, method, ig_steps, mlp, batch_size)
        for node, score in scores.items():
            effects[node] += score / n
            activations[node] += state.activation(node) / n

    ranked = sorted(effects, key=lambda node: -abs(effects[node]))
    kept = [
        node
        for node in ranked[:max_nodes]
        if abs(effects[node]) >= node_threshold and effects[node] != 0
    ]
    edge_weights: dict[tuple[Node, Node], float] = defaultdict(float)
    if edges and kept:
        for state in tqdm(states, desc=f"{method}: edges", disable=not progress):
            for pair, weight in _edges(lens, state, kept, method, mlp, batch_size).items():
                edge_weights[pair] += weight / n
    for node in kept:
        edge_weights[(node, METRIC_NODE)] = effects[node]

    records = {node.id: _record(lens, node, activations[node], effects[node]) for node in kept}
    metric_record = NodeRecord(
        id=METRIC_NODE.id,
        kind="logit",
        site=METRIC_NODE.site,
        layer=int(lens.model.cfg.n_layers),
        order=10**6,
        activation=metric_clean,
        effect=metric_clean - metric_base,
        label=getattr(metric, "name", "metric"),
    )
    records[metric_record.id] = metric_record
    settings: dict[str, Any] = {
        "baseline": kind,
        "positions": positions,
        "max_nodes": max_nodes,
        "node_threshold": node_threshold,
        "gradient_mode": lens.gradient_mode,
        "n_prompts": n,
        "metric_clean": metric_clean,
        "metric_baseline": metric_base,
        "edge_method": "attribution" if method == "ig" else method,
    }
    if method == "ig":
        settings["ig_steps"] = ig_steps
    if method == "direct":
        settings["mlp"] = mlp
    str_prompts = [_str_tokens(lens, row) for row in prompts.clean]
    return AttributionGraph(
        method,
        getattr(metric, "name", "metric"),
        records,
        {(u.id, d.id): w for (u, d), w in edge_weights.items()},
        settings,
        str_prompts,
    )


def _node_effects(
    lens: Lens,
    state: PromptState,
    metric: Metric,
    nodes: Sequence[Node],
    method: Method,
    ig_steps: int,
    mlp: MlpMode,
    batch_size: int,
) -> dict[Node, float]:
    if method == "exact":
        return exact_node_effects(lens, state, metric, nodes, batch_size=batch_size)
    if method == "attribution":
        return gradient_node_effects(lens, state, metric, nodes)
    if method == "ig":
        return integrated_gradient_node_effects(lens, state, metric, nodes, steps=ig_steps)
    return direct_node_effects(lens, state, metric, nodes, mlp=mlp)


def _edges(
    lens: Lens,
    state: PromptState,
    kept: Sequence[Node],
    method: Method,
    mlp: MlpMode,
    batch_size: int,
) -> dict[tuple[Node, Node], float]:
    if method == "exact":
        return exact_edges(lens, state, kept, kept, batch_size=batch_size)
    if method == "direct":
        return direct_edges(lens, state, kept, kept, mlp=mlp, batch_size=batch_size)
    return gradient_edges(lens, state, kept, kept, batch_size=batch_size)


def _metric_values(
    lens: Lens, prompts: PromptSet, metric: Metric, states: Sequence[PromptState]
) -> tuple[float, float]:
    """Mean metric on the clean prompts, and on the baseline (corrupted prompts if any, else NaN)."""
    with torch.no_grad():
        clean = evaluate(metric, lens.forward(prompts.clean, RunPlan()), prompts.answers).mean()
        base = float("nan")
        if prompts.corrupted is not None:
            base = float(
                evaluate(metric, lens.forward(prompts.corrupted, RunPlan()), prompts.answers).mean()
            )
    del states
    return float(clean), base


def _record(lens: Lens, node: Node, activation: float, effect: float) -> NodeRecord:
    site = EMBED_SITE if node.kind == "token" else node.site
    return NodeRecord(
        id=node.id,
        kind=node.kind,
        site=site,
        layer=lens.site_layer(site),
        order=lens.site_order(site),
        pos=node.pos,
        index=node.index,
        activation=activation,
        effect=effect,
    )


def _str_tokens(lens: Lens, row: Tensor) -> list[str]:
    if lens.model.tokenizer is None:
        return [str(int(t)) for t in row]
    return [str(t) for t in lens.model.to_str_tokens(row)]
