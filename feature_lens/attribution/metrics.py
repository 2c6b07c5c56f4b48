"""Metrics: one number per prompt, computed from a forward pass.

A metric is called with the `RunResult` of a batch and the answer tokens of each row (`[batch, k]`
or None) and returns a tensor of shape `[batch]`. Attribution explains how much of the metric each
node accounts for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.nodes import Node
from feature_lens.errors import InputError
from feature_lens.lens import RunResult


class Metric(Protocol):
    """Anything with a `name` that maps (run, answers) to `[batch]`."""

    name: str

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]: ...


def _answer(
    answers: Int[Tensor, "batch k"] | None, fixed: int | None, column: int, what: str
) -> Int[Tensor, " batch"] | int:
    if fixed is not None:
        return fixed
    if answers is None or answers.shape[1] <= column:
        raise InputError(
            f"the {what} token is neither given to the metric nor in the prompt set's answers "
            f"(column {column}); pass it, or build the PromptSet with answers"
        )
    return answers[:, column]


def _gather(
    logits: Float[Tensor, "batch d_vocab"], token: Int[Tensor, " batch"] | int
) -> Float[Tensor, " batch"]:
    if isinstance(token, int):
        return logits[:, token]
    return logits.gather(1, token.unsqueeze(1)).squeeze(1)


@dataclass
class LogitDiff:
    """logit(correct) - logit(wrong) at `pos` (default: the last position). Tokens are fixed ids or,
    when None, read per prompt from answers[:, 0] (correct) and answers[:, 1] (wrong)."""

    correct: int | None = None
    wrong: int | None = None
    pos: int = -1
    name: str = "logit_diff"

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]:
        logits = result.logits[:, self.pos]
        correct = _answer(answers, self.correct, 0, "correct")
        wrong = _answer(answers, self.wrong, 1, "wrong")
        return _gather(logits, correct) - _gather(logits, wrong)


@dataclass
class LogProb:
    """log p(token) at `pos` (default last); token fixed or answers[:, 0]."""

    token: int | None = None
    pos: int = -1
    name: str = "log_prob"

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]:
        log_probs = torch.log_softmax(result.logits[:, self.pos], dim=-1)
        return _gather(log_probs, _answer(answers, self.token, 0, "target"))


@dataclass
class NodeActivation:
    """A feature's activation as the target: at its position, or summed over positions."""

    node: Node
    name: str = "node_activation"

    def __post_init__(self) -> None:
        if self.node.kind != "feature":
            raise InputError(f"NodeActivation needs a feature node, got {self.node.id}")

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]:
        if self.node.site not in result.features:
            raise InputError(f"no features recorded at {self.node.site!r}")
        acts = result.features[self.node.site][..., self.node.index]
        return acts.sum(-1) if self.node.pos is None else acts[:, self.node.pos]


@dataclass
class CallableMetric:
    """Wrap a user function `fn(logits [batch, pos, vocab], answers) -> [batch]`."""

    fn: Callable[[Tensor, Tensor | None], Tensor]
    name: str = "custom"

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]:
        return self.fn(result.logits, answers)


def evaluate(
    metric: Metric, result: RunResult, answers: Int[Tensor, "batch k"] | None
) -> Float[Tensor, " batch"]:
    """Call `metric` and check it returned one finite number per row."""
    batch = result.logits.shape[0]
    value = metric(result, answers)
    if not isinstance(value, Tensor) or value.shape != (batch,):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise InputError(
            f"metric {getattr(metric, 'name', metric)!r} returned {shape}; it must return one "
            f"number per prompt, a tensor of shape [{batch}]"
        )
    return value


def needs_features(metric: Metric) -> bool:
    """Whether differentiating the metric needs the features kept in the autograd graph."""
    return isinstance(metric, NodeActivation)


def metric_sites(metric: Metric) -> set[str]:
    """Sites whose features the metric reads (so they must be encoded)."""
    return {metric.node.site} if isinstance(metric, NodeActivation) else set()


def at_one_position(metric: Metric, n_pos: int) -> tuple[Metric, int] | None:
    """For a metric that reads the logits at one position only (`LogitDiff`, `LogProb`): the same
    metric reading position 0, and that position, so a pass may compute the logits there alone
    (`RunPlan.logit_positions`) instead of a `[batch, pos, d_vocab]` tensor. None for any other
    metric, or a position outside `n_pos` (the full pass then raises as it would)."""
    if isinstance(metric, (LogitDiff, LogProb)) and -n_pos <= metric.pos < n_pos:
        return replace(metric, pos=0), metric.pos % n_pos
    return None
