"""circuit-tracer's graph conventions as `attribute` options: the checks, the token-node baseline,
BOS exclusion and the salient-logit targets (docs/methods.md, "circuit-tracer's graphs").

- `exclude_bos`: feature and error nodes at position 0 are not candidates (`drop_bos`);
- `token_nodes="embed"`: each prompt's token-node baseline is its stream entering block 0 minus
  its token embedding (the output of the embedding module, `hook_embed`), so a token node moves the
  token embedding alone (`ConventionStates`);
- `metric="salient-logits"`: the prompt's most probable next tokens as a `SalientLogits` metric
  (`resolve_metric`), used as weighted targets by the greedy selection, pruning and scores
  (`metric_parts`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import Tensor

from feature_lens.attribution.baselines import BaselineKind, NodeValues
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.replacement_scores import SalientLogits, salient_logits
from feature_lens.attribution.state import PromptState, StreamedStates
from feature_lens.errors import InputError
from feature_lens.lens import Lens, RunPlan

TokenNodes = Literal["resid_pre", "embed"]
SALIENT_LOGITS = "salient-logits"
"""`attribute(metric="salient-logits")`: circuit-tracer's targets (`SalientLogits`)."""


def metric_parts(metric: Metric) -> tuple[Sequence[Metric], Tensor]:
    """The metric as weighted targets: a `SalientLogits`'s demeaned logits and probabilities,
    else the metric itself with weight 1."""
    if isinstance(metric, SalientLogits):
        return [*metric.metrics()], metric.probabilities.detach().to("cpu", torch.float64)
    return [metric], torch.ones(1, dtype=torch.float64)


def drop_bos(nodes: list[Node], exclude_bos: bool) -> list[Node]:
    """`nodes` without feature and error nodes at position 0 when `exclude_bos`."""
    if not exclude_bos:
        return nodes
    return [node for node in nodes if node.kind == "token" or node.pos != 0]


def with_token_nodes(lens: Lens, state: PromptState, token_nodes: TokenNodes) -> PromptState:
    """The state with token nodes as `token_nodes` says (in place): for "embed", the token-node
    baseline becomes the prompt's stream entering block 0 minus its token embedding (`hook_embed`,
    the embedding module's output), so a token node moves the token embedding alone."""
    if token_nodes == "embed":
        with torch.no_grad():
            embedded = lens.model.embed(state.tokens).to(state.clean.embeddings.dtype)
        base = state.base
        state.base = NodeValues(base.features, base.errors, state.clean.embeddings - embedded)
    return state


class ConventionStates:
    """The prompt states (`StreamedStates`), each passed through `with_token_nodes`."""

    def __init__(self, states: StreamedStates, token_nodes: TokenNodes) -> None:
        self.states = states
        self.token_nodes: TokenNodes = token_nodes

    def __len__(self) -> int:
        return len(self.states)

    def __iter__(self) -> Iterator[PromptState]:
        return self.iterate()

    def iterate(self, gradients_for: Metric | None = None) -> Iterator[PromptState]:
        """The states in order; `gradients_for` as in `StreamedStates.iterate` (ignored with
        "embed" token nodes, whose states are rebuilt, so the fused gradients would not apply)."""
        if self.token_nodes == "resid_pre":
            yield from self.states.iterate(gradients_for=gradients_for)
            return
        for state in self.states:
            yield with_token_nodes(self.states.lens, state, self.token_nodes)


def resolve_metric(lens: Lens, prompts: PromptSet, metric: Metric | str) -> Metric:
    """The metric object: "salient-logits" becomes the prompt's `SalientLogits`; a
    `SalientLogits` is checked to be used on one prompt."""
    if isinstance(metric, str):
        if metric != SALIENT_LOGITS:
            raise InputError(
                f"unknown metric {metric!r}; pass a Metric object or {SALIENT_LOGITS!r}"
            )
        if len(prompts) != 1:
            raise InputError(
                f"metric {SALIENT_LOGITS!r} is defined for one prompt (its targets are that "
                f"prompt's likely next tokens), got {len(prompts)}; attribute them one at a time"
            )
        with torch.no_grad():
            logits = lens.forward(prompts.clean, RunPlan(splice=False)).logits[0]
        return salient_logits(logits, lens.model.W_U.detach())
    if isinstance(metric, SalientLogits) and len(prompts) != 1:
        raise InputError(
            f"a SalientLogits metric is one prompt's targets, got {len(prompts)} prompts; "
            "attribute them one at a time"
        )
    return metric


def check_conventions(
    prompts: PromptSet,
    baseline: BaselineKind,
    positions: str,
    edges: bool,
    token_nodes: str,
    max_feature_nodes: int | None,
    prune: tuple[float, float] | None,
    exclude_bos: bool = False,
) -> None:
    """Refuse inconsistent convention options with a one-line error naming the CLI flag."""
    if exclude_bos and positions != "keep":
        raise InputError(
            "exclude_bos (--exclude-bos) drops the nodes at position 0, so it needs a node per "
            "position: use positions='keep' (--positions keep)"
        )
    if token_nodes not in ("resid_pre", "embed"):
        raise InputError(
            f"token_nodes (--token-nodes) must be 'resid_pre' or 'embed', got {token_nodes!r}"
        )
    if token_nodes == "embed" and baseline != "zero":
        raise InputError(
            f"token_nodes='embed' (--token-nodes embed) needs the zero baseline, got {baseline!r}; "
            "pass baseline='zero' (--baseline zero)"
        )
    if max_feature_nodes is not None:
        if (
            isinstance(max_feature_nodes, bool)
            or not isinstance(max_feature_nodes, int)
            or max_feature_nodes < 1
        ):
            raise InputError(
                f"max_feature_nodes (--max-feature-nodes) must be an integer >= 1, got {max_feature_nodes!r}"
            )
        if len(prompts) != 1:
            raise InputError(
                f"max_feature_nodes (--max-feature-nodes) builds one prompt's graph, got "
                f"{len(prompts)} prompts; attribute them one at a time"
            )
        if positions != "keep":
            raise InputError(
                "max_feature_nodes (--max-feature-nodes) selects nodes per position; use "
                "positions='keep' (--positions keep)"
            )
    if prune is not None:
        if len(prune) != 2 or not all(0.0 <= float(t) <= 1.0 for t in prune):
            raise InputError(
                f"prune (--prune) takes (node_threshold, edge_threshold), each in [0, 1], got {prune!r}"
            )
        if not edges:
            raise InputError(
                "prune (--prune) ranks edges; it cannot be used without edges (--no-edges)"
            )
