"""The attribution methods as small registered objects: each scores nodes and computes edges.

`attribute` reads as score -> select -> edges -> graph over whichever method the registry holds
under a name; each method checks its own settings. A method's `node_effects` returns each node's
effect on the metric for one prompt, and its `edges` the matrix `[len(upstream), len(targets)]` of
edge weights u -> d (zero where u fires at or after d); the kernels live in `exact.py`,
`gradients.py` and `direct.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jaxtyping import Float
from torch import Tensor

from feature_lens.attribution.direct import (
    MlpMode,
    direct_edge_matrix,
    direct_node_effects,
)
from feature_lens.attribution.exact import exact_edge_matrix, exact_node_effects
from feature_lens.attribution.gradients import (
    gradient_edge_matrix,
    gradient_node_effects,
    integrated_gradient_node_effects,
)
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState
from feature_lens.errors import InputError
from feature_lens.lens import Lens


@dataclass(frozen=True)
class MethodSettings:
    """Settings a method may read: integration steps (ig), MLP mode (direct), batch size."""

    ig_steps: int = 16
    mlp: MlpMode = "stop"
    batch_size: int = 64
    memory_budget: int | None = None
    """Bytes for one batched backward of edge targets (None: the kernels' default, 1 GiB)."""


class AttributionMethod(Protocol):
    """One attribution method (see the module docstring)."""

    name: str
    edge_method: str
    """The method that computes its edges (recorded in a graph's settings)."""

    def check(self, settings: MethodSettings) -> dict[str, Any]:
        """Refuse invalid settings (InputError); return the ones to record in the graph."""
        ...

    def node_effects(
        self,
        lens: Lens,
        state: PromptState,
        metric: Metric,
        nodes: Sequence[Node],
        settings: MethodSettings,
    ) -> dict[Node, float]:
        """Each node's effect on the metric for one prompt."""
        ...

    def edges(
        self,
        lens: Lens,
        state: PromptState,
        upstream: Sequence[Node],
        targets: Sequence[Node],
        settings: MethodSettings,
    ) -> Float[Tensor, "upstream targets"]:
        """Edge weights `[len(upstream), len(targets)]` (targets: feature nodes)."""
        ...


def _check_batch(settings: MethodSettings) -> None:
    if not isinstance(settings.batch_size, int) or settings.batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {settings.batch_size!r}")
    budget = settings.memory_budget
    if budget is not None and (not isinstance(budget, int) or budget < 1):
        raise InputError(
            f"memory_budget (--memory-budget) must be a positive number of bytes, got {budget!r}"
        )


class Exact:
    """Activation patching (`feature_lens.attribution.exact`)."""

    name = "exact"
    edge_method = "exact"

    def check(self, settings: MethodSettings) -> dict[str, Any]:
        _check_batch(settings)
        return {}

    def node_effects(
        self,
        lens: Lens,
        state: PromptState,
        metric: Metric,
        nodes: Sequence[Node],
        settings: MethodSettings,
    ) -> dict[Node, float]:
        return exact_node_effects(lens, state, metric, nodes, batch_size=settings.batch_size)

    def edges(
        self,
        lens: Lens,
        state: PromptState,
        upstream: Sequence[Node],
        targets: Sequence[Node],
        settings: MethodSettings,
    ) -> Float[Tensor, "upstream targets"]:
        return exact_edge_matrix(lens, state, upstream, targets, batch_size=settings.batch_size)


class AttributionPatching:
    """First-order attribution patching (`feature_lens.attribution.gradients`)."""

    name = "attribution"
    edge_method = "attribution"
    clean_gradients = True
    """Its node effects come from the clean run's gradients: `attribute` builds each prompt's
    state with them (one forward for both)."""

    def check(self, settings: MethodSettings) -> dict[str, Any]:
        _check_batch(settings)
        return {}

    def node_effects(
        self,
        lens: Lens,
        state: PromptState,
        metric: Metric,
        nodes: Sequence[Node],
        settings: MethodSettings,
    ) -> dict[Node, float]:
        return gradient_node_effects(lens, state, metric, nodes)

    def edges(
        self,
        lens: Lens,
        state: PromptState,
        upstream: Sequence[Node],
        targets: Sequence[Node],
        settings: MethodSettings,
    ) -> Float[Tensor, "upstream targets"]:
        return gradient_edge_matrix(
            lens,
            state,
            upstream,
            targets,
            batch_size=settings.batch_size,
            memory_budget=settings.memory_budget,
        )


class IntegratedGradients(AttributionPatching):
    """Integrated gradients for node effects; attribution patching for edges."""

    name = "ig"
    edge_method = "attribution"
    clean_gradients = False

    def check(self, settings: MethodSettings) -> dict[str, Any]:
        _check_batch(settings)
        steps = settings.ig_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InputError(
                f"ig_steps (--ig-steps) must be an integer >= 1, got {steps!r}; 16 to 64 is usual"
            )
        return {"ig_steps": steps}

    def node_effects(
        self,
        lens: Lens,
        state: PromptState,
        metric: Metric,
        nodes: Sequence[Node],
        settings: MethodSettings,
    ) -> dict[Node, float]:
        return integrated_gradient_node_effects(lens, state, metric, nodes, steps=settings.ig_steps)


class Direct:
    """Direct attribution in the frozen linear model (`feature_lens.attribution.direct`)."""

    name = "direct"
    edge_method = "direct"

    def check(self, settings: MethodSettings) -> dict[str, Any]:
        _check_batch(settings)
        if settings.mlp not in ("stop", "linear"):
            raise InputError(f"mlp (--mlp) must be 'stop' or 'linear', got {settings.mlp!r}")
        return {"mlp": settings.mlp}

    def node_effects(
        self,
        lens: Lens,
        state: PromptState,
        metric: Metric,
        nodes: Sequence[Node],
        settings: MethodSettings,
    ) -> dict[Node, float]:
        return direct_node_effects(lens, state, metric, nodes, mlp=settings.mlp)

    def edges(
        self,
        lens: Lens,
        state: PromptState,
        upstream: Sequence[Node],
        targets: Sequence[Node],
        settings: MethodSettings,
    ) -> Float[Tensor, "upstream targets"]:
        return direct_edge_matrix(
            lens,
            state,
            upstream,
            targets,
            mlp=settings.mlp,
            batch_size=settings.batch_size,
            memory_budget=settings.memory_budget,
        )


METHOD_REGISTRY: dict[str, AttributionMethod] = {}


def register_method(method: AttributionMethod) -> AttributionMethod:
    """Add (or replace) a method under `method.name`; `attribute(method=name)` then uses it."""
    METHOD_REGISTRY[method.name] = method
    return method


def get_method(name: str) -> AttributionMethod:
    """The registered method called `name`."""
    if name not in METHOD_REGISTRY:
        raise InputError(
            f"unknown method {name!r}; choose one of {', '.join(sorted(METHOD_REGISTRY))}"
        )
    return METHOD_REGISTRY[name]


for _method in (Exact(), AttributionPatching(), IntegratedGradients(), Direct()):
    register_method(_method)
