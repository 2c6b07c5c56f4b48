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
Every graph with edges records its replacement and completeness scores (`replacement_scores`);
`prune` then keeps the most influential nodes and edges (`influence.prune_masks`).

With `max_feature_nodes`, steps 1-3 are circuit-tracer's instead (one prompt, `_feature_graph`):
the metric's targets' rows (node effects), then features chosen greedily by influence with
their incoming edges (`influence.greedy_rows`); every error and token node is kept. The options
for circuit-tracer's other conventions live in `conventions`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.baselines import BaselineKind
from feature_lens.attribution.conventions import (
    ConventionStates,
    TokenNodes,
    check_conventions,
    drop_bos,
    metric_parts,
    resolve_metric,
)
from feature_lens.attribution.direct import MlpMode, direct_node_effect_rows
from feature_lens.attribution.influence import greedy_rows, prune_masks
from feature_lens.attribution.methods import (
    METHOD_REGISTRY,
    AttributionMethod,
    Direct,
    MethodSettings,
    get_method,
)
from feature_lens.attribution.metrics import Metric, NodeActivation, evaluate
from feature_lens.attribution.nodes import METRIC_NODE, Node
from feature_lens.attribution.prepare import default_baseline
from feature_lens.attribution.preselect import check_preselect, preselected_effects
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.replacement_scores import graph_scores
from feature_lens.attribution.state import (
    Positions,
    PromptState,
    StreamedStates,
    candidate_nodes,
)
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph, NodeTable
from feature_lens.lens import EMBED_SITE, Lens, RunPlan, SiteEdit
from feature_lens.typed import float_list, int_list

if TYPE_CHECKING:
    from feature_lens.distributed.executor import Executor

Method = Literal["exact", "attribution", "ig", "direct"]
METHODS: tuple[Method, ...] = ("exact", "attribution", "ig", "direct")
METRIC_ORDER = 10**6
"""`order` of the metric node: after every site."""


def attribute(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric | str,
    *,
    method: str = "attribution",
    baseline: BaselineKind | None = None,
    positions: Positions = "keep",
    mean_tokens: Int[Tensor, "m pos"] | None = None,
    max_nodes: int = 64,
    node_threshold: float = 0.0,
    edges: bool = True,
    ig_steps: int = 16,
    mlp: MlpMode = "stop",
    batch_size: int = 64,
    progress: bool = True,
    memory_budget: int | None = None,
    preselect: int | None = None,
    exclude_bos: bool = False,
    token_nodes: TokenNodes = "resid_pre",
    max_feature_nodes: int | None = None,
    update_interval: int = 4,
    prune: tuple[float, float] | None = None,
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
        preselect: for "exact" (and "ig"): score every candidate with attribution patching and
            run the method only on the `preselect` nodes with the largest |score|
            (feature_lens.attribution.preselect); None scores every candidate with the method.
        exclude_bos: no feature or error nodes at position 0 (circuit-tracer's convention: the
            first token's nodes only carry the attention sink).
        token_nodes: "resid_pre" (a token node is the stream entering block 0: token plus
            positional embedding) or "embed" (the token embedding alone, `hook_embed`, as in
            circuit-tracer; the positional embedding then stays at its clean value). "embed"
            needs the zero baseline.
        metric: a `Metric`, or "salient-logits": circuit-tracer's targets for a single prompt,
            the most probable next tokens up to cumulative probability 0.95 (at most 10), each
            its demeaned logit, weighted by its probability (`SalientLogits`); no answers or
            corrupted prompt needed. A `SalientLogits` object may also be passed directly.
        max_feature_nodes: circuit-tracer's graph instead of `max_nodes`: one prompt, every
            error and token node, and this many feature nodes chosen greedily by their influence
            on the (probability-weighted) targets (feature_lens.attribution.influence), with
            their incoming edges computed in batches of `batch_size` while ranking them, the
            ranking refreshed every `update_interval` batches. All error and token nodes stay.
        prune: `(node_threshold, edge_threshold)`: keep the nodes and edges holding these
            shares of the total influence (circuit-tracer's `prune_graph`; token nodes and the
            metric always stay). Needs edges.
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
    check_preselect(preselect, spec.name)
    if executor is not None and (
        preselect is not None
        or exclude_bos
        or token_nodes != "resid_pre"
        or max_feature_nodes is not None
    ):
        raise InputError(
            "--ray runs attribution with the default conventions; drop --preselect, "
            "--exclude-bos, --token-nodes embed and --max-feature-nodes"
        )
    if preselect is not None and (
        exclude_bos or token_nodes != "resid_pre" or max_feature_nodes is not None
    ):
        raise InputError(
            "preselect (--preselect) runs with the default conventions; drop exclude_bos "
            "(--exclude-bos), token_nodes='embed' (--token-nodes) and max_feature_nodes "
            "(--max-feature-nodes)"
        )
    metric = resolve_metric(lens, prompts, metric)
    _check_inputs(lens, prompts, metric, positions, max_nodes, node_threshold)
    kind: BaselineKind = baseline or default_baseline(prompts)
    check_conventions(
        prompts, kind, positions, edges, token_nodes, max_feature_nodes, prune, exclude_bos
    )
    conventions: dict[str, Any] = {
        "exclude_bos": exclude_bos,
        "token_nodes": token_nodes,
        "max_feature_nodes": max_feature_nodes,
        "prune": None if prune is None else list(prune),
    }
    states = ConventionStates(
        StreamedStates(lens, prompts, kind, mean_tokens=mean_tokens), token_nodes
    )
    n = len(states)
    if max_feature_nodes is not None:
        return _feature_graph(
            lens,
            prompts,
            metric,
            states,
            spec,
            settings,
            {
                "baseline": kind,
                "positions": positions,
                "gradient_mode": lens.gradient_mode,
                "n_prompts": n,
                "edge_method": spec.edge_method,
                "update_interval": update_interval,
                **conventions,
                **recorded,
            },
            exclude_bos=exclude_bos,
            max_feature_nodes=max_feature_nodes,
            update_interval=update_interval,
            prune=prune,
            progress=progress,
        )

    job = AttributionJob(prompts, kind, mean_tokens, metric, method, positions, settings)
    # 1. score (attribution patching's clean gradients come from the states' own forward)
    effects: dict[Node, float] = defaultdict(float)
    if executor is not None:
        scores = executor.attribute_nodes(job)
        for prompt_scores in tqdm(scores, total=n, desc=f"{method}: nodes", disable=not progress):
            for node, score in prompt_scores.items():
                effects[node] += score / n
    elif preselect is not None:
        effects.update(
            preselected_effects(
                lens, states.states, metric, positions, spec, settings, preselect, progress=progress
            )
        )
        recorded = {**recorded, "preselect": preselect}
    else:
        fused = metric if getattr(spec, "clean_gradients", False) else None
        for state in tqdm(
            states.iterate(gradients_for=fused), desc=f"{method}: nodes", disable=not progress
        ):
            nodes = drop_bos(candidate_nodes(lens, state, positions), exclude_bos)
            for node, score in spec.node_effects(lens, state, metric, nodes, settings).items():
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
    record: dict[str, Any] = {
        "baseline": kind,
        "positions": positions,
        "max_nodes": max_nodes,
        "node_threshold": node_threshold,
        "gradient_mode": lens.gradient_mode,
        "n_prompts": n,
        "edge_method": spec.edge_method,
        **conventions,
        **recorded,
    }
    kinds = [node.kind for node in kept] + ["logit"]
    weights = torch.zeros(size, dtype=torch.float64)
    weights[-1] = 1.0
    node_mask = _score_and_prune(adjacency, kinds, weights, record, prune) if edges else None
    keep = torch.arange(size) if node_mask is None else torch.nonzero(node_mask)[:, 0]
    return _build_graph(
        lens,
        prompts,
        metric,
        states,
        kind,
        spec.name,
        [kept[i] for i in int_list(keep[:-1])],
        activation_sum[keep[:-1]] / n,
        effect[keep[:-1]],
        adjacency[keep][:, keep],
        record,
    )


def _score_and_prune(
    adjacency: Tensor,
    kinds: Sequence[str],
    weights: Tensor,
    record: dict[str, Any],
    prune: tuple[float, float] | None,
) -> Tensor:
    """Record the replacement and completeness scores of the (unpruned) graph; with `prune`,
    zero the adjacency of the nodes and edges `prune_masks` drops (in place). Returns the mask
    of the nodes kept (all of them without `prune`)."""
    record["replacement_score"], record["completeness_score"] = graph_scores(
        adjacency, kinds, weights
    )
    if prune is None:
        return torch.ones(len(adjacency), dtype=torch.bool)
    node_mask, edge_mask = prune_masks(
        adjacency, kinds, weights, node_threshold=prune[0], edge_threshold=prune[1]
    )
    adjacency.mul_((edge_mask & node_mask[:, None] & node_mask[None, :]).to(adjacency.dtype))
    return node_mask


def _build_graph(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    states: Sequence[PromptState] | ConventionStates | StreamedStates,
    kind: BaselineKind,
    method_name: str,
    kept: Sequence[Node],
    activation: Tensor,
    effect: Tensor,
    adjacency: Tensor,
    record: dict[str, Any],
) -> AttributionGraph:
    """The graph over `kept` (their activations and effects on the metric) plus the metric node
    (the adjacency's last row and column), with the metric's clean and all-at-baseline values."""
    metric_clean, metric_base = metric_values(lens, prompts, metric, states, kind)
    activation = torch.cat([activation, torch.tensor([metric_clean], dtype=torch.float64)])
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
    record = {**record, "metric_clean": metric_clean, "metric_baseline": metric_base}
    str_prompts = [_str_tokens(lens, row) for row in prompts.clean]
    return AttributionGraph.from_dense(
        method_name,  # type: ignore[arg-type]
        name,
        table,
        adjacency,
        record,
        str_prompts,
    )


def _feature_graph(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    states: ConventionStates,
    spec: AttributionMethod,
    settings: MethodSettings,
    record: dict[str, Any],
    *,
    exclude_bos: bool,
    max_feature_nodes: int,
    update_interval: int,
    prune: tuple[float, float] | None,
    progress: bool,
) -> AttributionGraph:
    """circuit-tracer's graph for one prompt (see `attribute`'s `max_feature_nodes`): rows of
    the targets, then of features chosen greedily by influence; scores; optional pruning; the
    targets merged into the metric node (their weighted sum, as the metric is)."""
    state = next(iter(states))
    candidates = drop_bos(candidate_nodes(lens, state, "keep"), exclude_bos)
    features = [node for node in candidates if node.kind == "feature"]
    others = [node for node in candidates if node.kind == "error"]
    others += [node for node in candidates if node.kind == "token"]
    nodes = features + others
    parts, weights = metric_parts(metric)
    logit_rows = torch.zeros(len(parts), len(nodes) + len(parts), dtype=torch.float64)
    if isinstance(spec, Direct):  # every target from one batched backward
        rows = direct_node_effect_rows(lens, state, parts, nodes, mlp=settings.mlp)
        logit_rows[:, : len(nodes)] = rows.detach().to("cpu", torch.float64)
    else:
        for k, part in enumerate(parts):
            effects = spec.node_effects(lens, state, part, nodes, settings)
            logit_rows[k, : len(nodes)] = torch.tensor([effects.get(n, 0.0) for n in nodes])
    bar = tqdm(
        total=min(max_feature_nodes, len(features)),
        desc=f"{spec.name}: features",
        disable=not progress,
    )

    def feature_rows(index: Tensor) -> Tensor:
        targets = [features[i] for i in int_list(index)]
        matrix = spec.edges(lens, state, nodes, targets, settings)  # [U, T]
        bar.update(len(targets))
        rows = torch.zeros(len(targets), len(nodes) + len(parts), dtype=torch.float64)
        rows[:, : len(nodes)] = matrix.detach().to("cpu", torch.float64).T
        return rows

    selected, rows = greedy_rows(
        len(features),
        max_feature_nodes,
        logit_rows,
        weights,
        feature_rows,
        batch_size=settings.batch_size,
        update_interval=update_interval,
    )
    bar.close()
    # Dense graph over [selected features, errors, tokens, targets].
    columns = torch.cat([selected, torch.arange(len(features), len(nodes) + len(parts))])
    kept = [features[i] for i in int_list(selected)] + others
    k = len(parts)
    full = torch.zeros(len(kept) + k, len(kept) + k, dtype=torch.float64)
    full[: len(selected)] = rows[:, columns]
    full[-k:] = logit_rows[:, columns]
    kinds = [node.kind for node in kept] + ["logit"] * k
    logit_weights = torch.cat([torch.zeros(len(kept), dtype=torch.float64), weights])
    n_kept = len(kept)
    effect = (weights @ full[-k:])[:n_kept]  # the weighted targets' row, before pruning
    node_mask = _score_and_prune(full, kinds, logit_weights, record, prune)
    adjacency = torch.zeros(n_kept + 1, n_kept + 1, dtype=torch.float64)
    adjacency[:-1, :-1] = full[:n_kept, :n_kept]
    # The metric's edge from a node: its effect, while any of the targets' edges from it stays.
    adjacency[-1, :-1] = torch.where((full[-k:, :n_kept] != 0).any(0), effect, 0)
    record["n_targets"] = k
    record["target_tokens"] = [getattr(p, "token", None) for p in parts]
    record["target_weights"] = float_list(weights)
    keep = torch.nonzero(torch.cat([node_mask[:n_kept], torch.tensor([True])]))[:, 0]
    activation = torch.tensor([state.activation(node) for node in kept], dtype=torch.float64)
    return _build_graph(
        lens,
        prompts,
        metric,
        [state],  # the metric with every node at its baseline: this prompt's state
        record["baseline"],
        spec.name,
        [kept[i] for i in int_list(keep[:-1])],
        activation[keep[:-1]],
        effect[keep[:-1]],
        adjacency[keep][:, keep],
        record,
    )


def _second_pass(
    lens: Lens,
    states: Sequence[PromptState] | ConventionStates | StreamedStates,
    kept: Sequence[Node],
    targets: Sequence[int],
    spec: AttributionMethod,
    settings: MethodSettings,
    desc: str,
    progress: bool,
    executor: Executor | None = None,
    job: AttributionJob | None = None,
) -> tuple[Float[Tensor, "kept targets"], Float[Tensor, " kept"]]:
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
    states: Sequence[PromptState] | ConventionStates | StreamedStates,
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
    lens: Lens,
    metric: Metric,
    tokens: Int[Tensor, "n pos"],
    answers: Int[Tensor, "n k"] | None,
    chunk: int = 64,
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


def _str_tokens(lens: Lens, row: Int[Tensor, " pos"]) -> list[str]:
    if lens.model.tokenizer is None:
        return [str(int(t)) for t in row]
    return [str(t) for t in lens.model.to_str_tokens(row)]


__all__ = ["METHODS", "METHOD_REGISTRY", "attribute", "metric_values"]
