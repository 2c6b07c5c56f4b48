"""Pre-selection: score every candidate with attribution patching, patch exactly only the top k.

Exact patching costs one forward row per candidate node, and a prompt of n tokens has about
n x (features firing per token) x sites candidates, each row a forward over n tokens: quadratic in
the prompt's length. Attribution patching scores all of them from one forward and one backward.
With `attribute(method="exact", preselect=k)` (CLI `--preselect K`):

1. every prompt's candidates get their attribution-patching score (`gradient_node_effects`, from
   the clean forward that also gives the prompt's state), averaged over prompts;
2. the k nodes with the largest |mean score| are kept;
3. those k nodes, and only those, are scored by the method itself (exact patching: k rows per
   prompt instead of one per candidate); the others get no score and cannot enter the graph.

The k nodes' effects are exactly what the method gives them without pre-selection (the same
interventions, in other batches); what pre-selection can lose is a node whose first-order score
ranks it outside the top k while its exact effect would have ranked it inside.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tqdm.auto import tqdm

from feature_lens.attribution.gradients import gradient_node_effects
from feature_lens.attribution.methods import AttributionMethod, MethodSettings
from feature_lens.attribution.metrics import Metric
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import Positions, StreamedStates, candidate_nodes
from feature_lens.errors import InputError
from feature_lens.lens import Lens

PRESELECT_METHODS = ("exact", "ig")
"""Methods whose node scores cost more than attribution patching's, where pre-selection helps."""


def check_preselect(preselect: int | None, method: str) -> None:
    """Refuse a pre-selection that is not a positive integer, or for a method it does not fit."""
    if preselect is None:
        return
    if isinstance(preselect, bool) or not isinstance(preselect, int) or preselect < 1:
        raise InputError(f"preselect (--preselect) must be an integer >= 1, got {preselect!r}")
    if method not in PRESELECT_METHODS:
        raise InputError(
            f"preselect (--preselect) applies to methods {' and '.join(PRESELECT_METHODS)}, not "
            f"{method!r}: attribution patching already scores every node from one backward"
        )


def preselect_nodes(
    lens: Lens,
    states: StreamedStates,
    metric: Metric,
    positions: Positions,
    k: int,
    *,
    progress: bool = False,
) -> list[Node]:
    """The k candidates with the largest |attribution-patching score| averaged over prompts."""
    scores: dict[Node, float] = defaultdict(float)
    n = len(states)
    for state in tqdm(
        states.iterate(gradients_for=metric), desc="preselect: attribution", disable=not progress
    ):
        nodes = candidate_nodes(lens, state, positions)
        for node, score in gradient_node_effects(lens, state, metric, nodes).items():
            scores[node] += score / n
    return sorted(scores, key=lambda node: -abs(scores[node]))[:k]


def preselected_effects(
    lens: Lens,
    states: StreamedStates,
    metric: Metric,
    positions: Positions,
    spec: AttributionMethod,
    settings: MethodSettings,
    k: int,
    *,
    progress: bool = False,
) -> dict[Node, float]:
    """Mean node effects by `spec` of the k pre-selected nodes only (see the module doc)."""
    chosen = preselect_nodes(lens, states, metric, positions, k, progress=progress)
    effects: dict[Node, float] = defaultdict(float)
    n = len(states)
    for state in tqdm(states, desc=f"{spec.name}: top {k} nodes", disable=not progress):
        nodes = _present(chosen, candidate_nodes(lens, state, positions))
        for node, score in spec.node_effects(lens, state, metric, nodes, settings).items():
            effects[node] += score / n
    return effects


def _present(chosen: Sequence[Node], candidates: Sequence[Node]) -> list[Node]:
    """The chosen nodes that are candidates on this prompt (patching any other changes nothing:
    its effect there is 0, as without pre-selection)."""
    here = set(candidates)
    return [node for node in chosen if node in here]
