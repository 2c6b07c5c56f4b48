"""Circuit evaluation: how much of the metric a pruned graph keeps.

Every feature and error node *outside* the circuit is set to its baseline (mean over a dataset,
zero, or its value on the corrupted prompt) at every site, with features recomputed at each site from the already-ablated stream (as in
Marks et al. 2024); token embeddings are left alone. Then
    faithfulness = (m(circuit) - m(empty)) / (m(full) - m(empty)),
where m(full) is the clean metric and m(empty) the metric with every node ablated: 1 means the
circuit alone reproduces the model's behaviour, 0 means it explains none of it.

Several dictionaries at one hook (an SAE and a `Directions` set, say) are alternative views of the
same activation, spliced one after the other. The first one spliced there (the *primary*, in the
Lens's order) is ablated as above. A later (*secondary*) one is left alone when the circuit has
none of its nodes; otherwise its out-of-circuit features are set to their baseline (on the stream
the primary has already ablated) and its error term — everything it does not explain, i.e. the
rest of that stream — is never ablated. So attaching directions does not change the score of a
circuit made of the other dictionaries' nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.baselines import NodeValues, baseline_values
from feature_lens.attribution.metrics import Metric, evaluate
from feature_lens.attribution.nodes import Node
from feature_lens.attribution.prompts import PromptSet
from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from feature_lens.lens import Lens, RunPlan, SiteEdit

Ablation = Literal["mean", "zero", "corrupted"]


@dataclass
class Faithfulness:
    """Metric means over prompts with the circuit kept, nothing kept, everything kept."""

    circuit: float
    empty: float
    full: float

    @property
    def score(self) -> float:
        """(circuit - empty) / (full - empty); NaN when full == empty."""
        span = self.full - self.empty
        return float("nan") if span == 0 else (self.circuit - self.empty) / span


def circuit_nodes(graph: AttributionGraph) -> list[Node]:
    """The feature and error nodes of a graph (read from its node table)."""
    return [node for node in graph.table.nodes if node.kind in ("feature", "error")]


def faithfulness(
    lens: Lens,
    prompts: PromptSet,
    metric: Metric,
    circuit: AttributionGraph | Iterable[Node],
    *,
    ablation: Ablation | None = None,
    mean_tokens: Int[Tensor, "m pos"] | None = None,
) -> Faithfulness:
    """Evaluate a circuit (a graph, or its nodes) by ablating everything outside it.

    `ablation` defaults to "corrupted" when the prompt set has corrupted prompts, else "mean"
    (over `mean_tokens`, by default the prompts' own tokens).

    With `ablation="corrupted"` (the baseline attribution with corrupted prompts scores against),
    nodes whose clean and corrupted values agree are effectively kept, and m(empty) is close to the
    metric on the corrupted prompts; mean or zero ablation removes every other node's context too."""
    nodes = circuit_nodes(circuit) if isinstance(circuit, AttributionGraph) else list(circuit)
    if ablation is None:
        ablation = "corrupted" if prompts.corrupted is not None else "mean"
    if ablation == "mean" and mean_tokens is None:
        mean_tokens = prompts.clean  # the prompts' own tokens, when no dataset is given
    if ablation not in ("mean", "zero", "corrupted"):
        raise InputError(f"ablation must be 'mean', 'zero' or 'corrupted', got {ablation!r}")
    for node in nodes:
        if node.kind in ("feature", "error"):
            dictionary = lens.dictionary(node.site)
            if node.index is not None and not 0 <= node.index < dictionary.d_sae:
                raise InputError(
                    f"feature index {node.index} out of range [0, {dictionary.d_sae}) at {node.site}"
                )
    base = baseline_values(lens, prompts, ablation, mean_tokens=mean_tokens)
    with torch.no_grad():
        full = evaluate(metric, lens.forward(prompts.clean, RunPlan()), prompts.answers).mean()
        kept = _run_ablated(lens, prompts, metric, base, nodes)
        empty = _run_ablated(lens, prompts, metric, base, [])
    return Faithfulness(float(kept), float(empty), float(full))


def _run_ablated(
    lens: Lens, prompts: PromptSet, metric: Metric, base: NodeValues, keep: list[Node]
) -> Float[Tensor, ""]:
    n_pos = prompts.n_pos
    edits: dict[str, SiteEdit] = {}
    primary: dict[str, str] = {}  # hook -> the first dictionary spliced there
    for site, dictionary in lens.dictionaries.items():
        secondary = primary.setdefault(dictionary.hook_out, site) != site
        members = [node for node in keep if node.site == site]
        if secondary and not members:
            continue  # a further view of a stream the primary dictionary already ablates
        feature_mask = torch.zeros(
            n_pos, dictionary.d_sae, dtype=torch.bool, device=prompts.clean.device
        )
        error_mask = torch.zeros(n_pos, 1, dtype=torch.bool, device=prompts.clean.device)
        for node in members:
            rows = slice(None) if node.pos is None else node.pos
            if node.kind == "feature":
                feature_mask[rows, node.index] = True
            elif node.kind == "error":
                error_mask[rows] = True
        base_f, base_e = base.features[site], base.errors[site]
        edits[site] = SiteEdit(
            features=lambda f, m=feature_mask, b=base_f: torch.where(m, f, b),
            # A secondary dictionary's error term is the rest of the stream: never ablated.
            error=None if secondary else (lambda e, m=error_mask, b=base_e: torch.where(m, e, b)),
        )
    result = lens.forward(prompts.clean, RunPlan(edits=edits))
    return evaluate(metric, result, prompts.answers).mean()
