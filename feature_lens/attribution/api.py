"""`attribute`: score nodes -> select -> edges -> graph, with any registered method.

1. **score**: for each prompt, every candidate node (one whose clean value differs from its
   baseline) gets its effect on the metric from the method; effects are averaged over prompts
   (a node that is not a candidate on a prompt has effect 0 there: patching it changes nothing);
2. **select**: the `max_nodes` strongest nodes (by |mean effect|) above `node_threshold`;
3. **edges**: the method's edge matrix between the selected nodes, averaged over prompts;
4. **graph**: a node table (activations are means over *all* prompts) and a dense adjacency over
   the selected nodes plus the metric node, whose incoming edges are the node effects. The metric
   node's activation is the clean metric, its effect the clean metric minus the metric with every
   node (features, error terms, token embeddings) at its baseline (for the corrupted baseline this
   is the corrupted prompts' metric).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.baselines import BaselineKind
from feature_lens.attribution.direct import MlpMode
from feature_lens.attribution.methods import (
    METHOD_REGISTRY,
    AttributionMethod,
    MethodSettings,
    get_method,
)
from feature_lens.attribution.metrics import Metric, NodeActivation, evaluate
from feature_lens.attribution.nodes import METRIC_NODE, Node
from feature_lens.attribution.prepare import default_baseline
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import (
    Positions,
    PromptState,
    StreamedStates,
    candidate_nodes,
)
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, NodeTable
from feature_lens.lens import EMBED_SITE, Lens, RunPlan, SiteEdit

if TYPE_CHECKING:
    from feature_lens.distributed.executor import Executor

Method = Literal["exact", "attribution", "ig", "direct"]
METHODS: tuple[Method, ...] = ("exact", "attribution", "ig", "direct")
METRIC_ORDER = 10**6
"""`order` of the metric node: after every site."""


def attribute(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    *,
    method: str = "attribution",
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
    memory_budget: int | None = None,
    executor: Executor | None = None,
) -> AttributionGraph:
    """Attribute `metric` to the Lens's nodes with `method`, keep the strongest, connect them.

    Args:
        method: a registered method (`feature_lens.attribution.methods`): "exact" (activation
            patching), "attribution" (first-order attribution patching), "ig" (integrated
            gradients for node effects, attribution patching for edges), or "direct" (direct
            attribution in the frozen linear model; see feature_lens.attribution.direct).
        baseline: "corrupted" (default when corrupted prompts are given), "zero" (default otherwise),
            or "mean" (over `mean_tokens`).
        positions: "keep" (a node per position) or "sum" (a node per feature, all positions at once).
        max_nodes: nodes kept in the graph, by |effect| (averaged over prompts).
        node_threshold: also drop nodes whose |effect| is below this.
        edges: compute edges between kept nodes (with the same method), not only node effects.
        ig_steps: integration steps for "ig" (>= 1).
        mlp: for "direct": "stop" (MLPs held) or "linear" (MLPs linearised).
        batch_size: interventions (exact) or targets (edges) per forward pass.
        memory_budget: bytes for one batched backward of edge targets (default 1 GiB); edges
            use at most `batch_size` targets per backward, fewer when the budget says so.
        executor: where the per-prompt work runs (`feature_lens.distributed`; None: here). Each
            prompt's scores and edges come back in prompt order and are summed as here, so the
            graph is the same.
    Returns:
        The graph (see the module docstring): node effects, activations and edge weights are
        means over prompts.
    """
    spec = get_method(method)
    settings = MethodSettings(
        ig_steps=ig_steps, mlp=mlp, batch_size=batch_size, memory_budget=memory_budget
    )
    recorded = spec.check(settings)
    _check_inputs(lens, prompts, metric, positions, max_nodes, node_threshold)
    kind: BaselineKind = baseline or default_baseline(prompts)
    states = StreamedStates(lens, prompts, kind, mean_tokens=mean_tokens)
    n = len(states)

    job = AttributionJob(prompts, kind, mean_tokens, metric, method, positions, settings)
    # 1. score
    effects: dict[Node, float] = defaultdict(float)
    if executor is None:
        scores: Iterable[dict[Node, float]] = (
            prompt_node_effects(lens, state, job) for state in states
        )
    else:
        scores = executor.attribute_nodes(job)
    for prompt_scores in tqdm(scores, total=n, desc=f"{method}: nodes", disable=not progress):
        for node, score in prompt_scores.items():
            effects[node] += score / n

    # 2. select
    ranked = sorted(effects, key=lambda node: -abs(effects[node]))
    kept = [
        node
        for node in ranked[:max_nodes]
        if abs(effects[node]) >= node_threshold and effects[node] != 0
    ]

    # 3. edges: [target row, source row] over kept nodes, the metric last.
    size = len(kept) + 1
    adjacency = torch.zeros(size, size, dtype=torch.float64)
    effect = torch.tensor([effects[node] for node in kept], dtype=torch.float64)
    adjacency[-1, :-1] = effect
    targets = [j for j, node in enumerate(kept) if node.kind == "feature"] if edges else []
    total, activation_sum = _second_pass(
        lens, states, kept, targets, spec, settings, f"{method}: edges", progress, executor, job
    )
    if targets:
        adjacency[torch.tensor(targets), :-1] = (total / n).T

    # 4. graph
    metric_clean, metric_base = metric_values(lens, prompts, metric, states, kind)
    activation = torch.cat([activation_sum / n, torch.tensor([metric_clean], dtype=torch.float64)])
    name = getattr(metric, "name", "metric")
    sites = [node.writes_to for node in kept]
    table = NodeTable.from_nodes(
        [*kept, METRIC_NODE],
        layer=[lens.site_layer(site) for site in sites] + [int(lens.model.cfg.n_layers)],
        order=[lens.site_order(site) for site in sites] + [METRIC_ORDER],
        activation=activation,
        effect=torch.cat([effect, torch.tensor([metric_clean - metric_base])]),
        label=[""] * len(kept) + [name],
    )
    record: dict[str, Any] = {
        "baseline": kind,
        "positions": positions,
        "max_nodes": max_nodes,
        "node_threshold": node_threshold,
        "gradient_mode": lens.gradient_mode,
        "n_prompts": n,
        "metric_clean": metric_clean,
        "metric_baseline": metric_base,
        "edge_method": spec.edge_method,
        **recorded,
    }
    str_prompts = [_str_tokens(lens, row) for row in prompts.clean]
    return AttributionGraph.from_dense(
        spec.name,  # type: ignore[arg-type]
        name,
        table,
        adjacency,
        record,
        str_prompts,
    )


def _second_pass(
    lens: Lens,
    states: StreamedStates,
    kept: Sequence[Node],
    targets: Sequence[int],
    spec: AttributionMethod,
    settings: MethodSettings,
    desc: str,
    progress: bool,
    executor: Executor | None = None,
    job: AttributionJob | None = None,
) -> tuple[Tensor, Tensor]:
    """One pass over the prompts (one state alive at a time): the summed edge matrix
    `[len(kept), len(targets)]` (targets index `kept`) and the kept nodes' summed activations.
    With `executor`, each prompt's part comes from its workers (`job`), summed in prompt order."""
    total = torch.zeros(len(kept), len(targets), dtype=torch.float64)
    activation = torch.zeros(len(kept), dtype=torch.float64)
    target_nodes = [kept[j] for j in targets]
    if executor is not None and job is not None:
        parts: Iterable[tuple[Tensor, Tensor | None]] = executor.attribute_edges(
            job, kept, target_nodes
        )
    else:
        parts = (prompt_edges(lens, state, kept, target_nodes, spec, settings) for state in states)
    for row, matrix in tqdm(
        parts, total=len(states), desc=desc, disable=not progress or not targets
    ):
        activation += row
        if matrix is not None:
            total += matrix
    return total, activation


@dataclass(frozen=True)
class AttributionJob:
    """What every prompt of an `attribute` call shares (shipped to workers with the prompts)."""

    prompts: PromptSet
    baseline: BaselineKind
    mean_tokens: Tensor | None
    metric: Metric
    method: str
    positions: Positions
    settings: MethodSettings

    def states(self, lens: Lens) -> StreamedStates:
        """The prompts' states (built as they are indexed)."""
        return StreamedStates(lens, self.prompts, self.baseline, mean_tokens=self.mean_tokens)


def prompt_node_effects(lens: Lens, state: PromptState, job: AttributionJob) -> dict[Node, float]:
    """One prompt's node effects (its candidate nodes only; `attribute` step 1)."""
    nodes = candidate_nodes(lens, state, job.positions)
    spec = get_method(job.method)
    return dict(spec.node_effects(lens, state, job.metric, nodes, job.settings))


def prompt_edges(
    lens: Lens,
    state: PromptState,
    kept: Sequence[Node],
    target_nodes: Sequence[Node],
    spec: AttributionMethod,
    settings: MethodSettings,
) -> tuple[Tensor, Tensor | None]:
    """One prompt's part of `attribute` step 3: the kept nodes' activations and (with targets)
    the edge matrix `[len(kept), len(target_nodes)]`, both float64 on CPU."""
    row = torch.tensor([state.activation(node) for node in kept], dtype=torch.float64)
    if not target_nodes:
        return row, None
    matrix = spec.edges(lens, state, kept, target_nodes, settings)
    return row, matrix.detach().to("cpu", torch.float64)


def _check_inputs(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    positions: str,
    max_nodes: int,
    node_threshold: float,
) -> None:
    if positions not in ("keep", "sum"):
        raise InputError(f"positions must be 'keep' or 'sum', got {positions!r}")
    if max_nodes < 1:
        raise InputError(f"max_nodes must be at least 1, got {max_nodes}")
    if not node_threshold >= 0:
        raise InputError(f"node_threshold must be a number >= 0, got {node_threshold!r}")
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
        if metric.node.pos is not None and not metric.node.pos < prompts.n_pos:
            raise InputError(
                f"position {metric.node.pos} is outside the prompts' {prompts.n_pos} tokens"
            )


def metric_values(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    states: Iterable[PromptState],
    baseline: BaselineKind,
) -> tuple[float, float]:
    """Mean metric on the clean prompts, and with every node at its baseline (on the corrupted
    prompts themselves for the corrupted baseline; see the module docstring)."""
    with torch.no_grad():
        clean = _mean_metric(lens, metric, prompts.clean, prompts.answers)
        if baseline == "corrupted" and prompts.corrupted is not None:
            return clean, _mean_metric(lens, metric, prompts.corrupted, prompts.answers)
        values = [
            evaluate(
                metric, lens.forward(state.tokens, _all_at_baseline(lens, state)), state.answers
            )
            for state in states
        ]
    return clean, float(torch.cat(values).mean())


def _mean_metric(
    lens: Lens, metric: Metric, tokens: Tensor, answers: Tensor | None, chunk: int = 64
) -> float:
    """Mean of the metric over prompts, `chunk` prompts per forward (memory flat in n)."""
    values = [
        evaluate(
            metric,
            lens.forward(tokens[i : i + chunk], RunPlan()),
            None if answers is None else answers[i : i + chunk],
        )
        for i in range(0, tokens.shape[0], chunk)
    ]
    return float(torch.cat(values).mean())


def _all_at_baseline(lens: Lens, state: PromptState) -> RunPlan:
    """Every feature, error term and token embedding set to its baseline value."""
    edits = {
        site: SiteEdit(
            features=lambda f, b=state.base.features[site]: b.expand_as(f),
            error=lambda e, b=state.base.errors[site]: b.expand_as(e),
        )
        for site in lens.sites
    }
    embeddings = state.clean.embeddings
    edits[EMBED_SITE] = SiteEdit(add=state.base.embeddings.expand_as(embeddings) - embeddings)
    return RunPlan(edits=edits)


def _str_tokens(lens: Lens, row: Tensor) -> list[str]:
    if lens.model.tokenizer is None:
        return [str(int(t)) for t in row]
    return [str(t) for t in lens.model.to_str_tokens(row)]


__all__ = ["METHODS", "METHOD_REGISTRY", "attribute", "metric_values"]
