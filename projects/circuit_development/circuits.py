"""The planted tasks' sparse feature circuits at one checkpoint, checked and scored.

For a task, its held-out clean/corrupted prompt pairs and the metric logit(correct) - logit(wrong)
at the last position, with the checkpoint's SAEs spliced in (`feature_lens.Lens`):

1. **Attribution patching** (`attribute(method="attribution")`, corrupted-prompt baseline) scores
   every feature and SAE error node, one node per feature over all positions (`positions="sum"`),
   so a circuit is a set of features that can be followed across checkpoints by matching.
2. **Exact-patching check**: on a subset of the prompts, activation patching (`method="exact"`)
   scores the same candidates; the check reports the correlation of the two sets of effects over
   the attribution circuit's nodes and the overlap of the two top-k node sets.
3. **Circuit and faithfulness**: the circuit is the top `circuit_size` nodes by |effect|; its
   faithfulness (`feature_lens.attribution.faithfulness`) is measured for several sizes, with
   everything outside the circuit set to its value on the corrupted prompt (the baseline the
   attribution scores against, so m(empty) is the corrupted metric) and, as in Marks et al., to
   its mean over held-out corpus tokens.

`circuit_persistence` then relates the circuits of two checkpoints through a feature matching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from feature_lens.attribution import LogitDiff, Node, PromptSet, attribute, faithfulness
from feature_lens.graph import AttributionGraph
from feature_lens.lens import Lens
from feature_lens.zoo.corpus import corpus_tokens
from feature_lens.zoo.tasks import task_prompts
from projects.circuit_development.config import CircuitSettings


def task_prompt_set(task: str, n: int, *, seed: int = 0) -> PromptSet:
    """Held-out prompt pairs of `task` as a `PromptSet` with answers `[correct, wrong]`."""
    pairs = task_prompts(task, n, seed=seed, split="test")
    return PromptSet(pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], dim=1))


def ranked_nodes(graph: AttributionGraph) -> list[tuple[Node, float]]:
    """Feature and error nodes of `graph` with their effects, strongest |effect| first."""
    nodes = [
        (record.node, record.effect)
        for record in graph.nodes.values()
        if record.kind in ("feature", "error")
    ]
    return sorted(nodes, key=lambda item: -abs(item[1]))


def _subset(prompts: PromptSet, n: int) -> PromptSet:
    return PromptSet(
        prompts.clean[:n],
        None if prompts.corrupted is None else prompts.corrupted[:n],
        None if prompts.answers is None else prompts.answers[:n],
    )


def exact_check(
    lens: Lens, prompts: PromptSet, n_nodes: int, *, batch_size: int = 64
) -> dict[str, float]:
    """Attribution vs exact patching on the same prompts (effects over all candidate nodes).

    correlation: Pearson r of the two effects over the union of both top-`n_nodes` sets;
    top_overlap: |top_attr ∩ top_exact| / n_nodes; sign_agreement: fraction of the union where
    the signs agree.
    """
    metric = LogitDiff()
    kwargs: dict[str, Any] = {"positions": "sum", "edges": False, "progress": False}
    approx = attribute(lens, prompts, metric, method="attribution", max_nodes=10**6, **kwargs)
    exact = attribute(
        lens, prompts, metric, method="exact", max_nodes=10**6, batch_size=batch_size, **kwargs
    )
    a = {n.id: e for n, e in ranked_nodes(approx)}
    x = {n.id: e for n, e in ranked_nodes(exact)}
    top_a = [n.id for n, _ in ranked_nodes(approx)[:n_nodes]]
    top_x = [n.id for n, _ in ranked_nodes(exact)[:n_nodes]]
    union = sorted(set(top_a) | set(top_x))
    va = np.array([a.get(i, 0.0) for i in union])
    vx = np.array([x.get(i, 0.0) for i in union])
    ok = len(union) > 1 and va.std() > 0 and vx.std() > 0
    return {
        "correlation": float(np.corrcoef(va, vx)[0, 1]) if ok else float("nan"),
        "top_overlap": len(set(top_a) & set(top_x)) / max(1, min(n_nodes, len(top_a))),
        "sign_agreement": float((np.sign(va) == np.sign(vx)).mean()) if union else float("nan"),
    }


def task_circuit(
    lens: Lens, task: str, settings: CircuitSettings, *, seed: int = 0
) -> dict[str, Any]:
    """Circuit of `task` at this checkpoint: its nodes, faithfulness per size, the exact check.

    Returns a JSON-able record: `metric_clean`/`metric_corrupted` (mean logit diff on the clean and
    corrupted prompts, nats), `nodes` (the top `max(faithfulness_sizes)` node ids with effects),
    `circuit` (the top `circuit_size` feature ids as `[site, index]`), `faithfulness` and
    `mean_faithfulness` (size -> score, corrupted / mean ablation), `circuit_metric` (size ->
    metric with only the circuit kept, corrupted ablation), `full_metric`, `empty_metric` and
    `mean_empty_metric` (nothing / everything ablated; a faithfulness is only meaningful when
    full - empty is well above the prompt-to-prompt noise), `error_share` (share of the circuit's |effect| on error nodes), `exact` (see
    `exact_check`).
    """
    prompts = task_prompt_set(task, settings.n_prompts, seed=seed)
    metric = LogitDiff()
    largest = max(settings.faithfulness_sizes)
    graph = attribute(
        lens,
        prompts,
        metric,
        method="attribution",
        positions="sum",
        max_nodes=largest,
        edges=False,
        progress=False,
    )
    ranked = ranked_nodes(graph)
    mean_tokens = corpus_tokens(settings.n_mean_contexts, seed=seed, split="test")
    scored = {
        ablation: {
            str(k): faithfulness(
                lens,
                prompts,
                metric,
                [n for n, _ in ranked[:k]],
                ablation=ablation,
                mean_tokens=mean_tokens,
            )
            for k in settings.faithfulness_sizes
        }
        for ablation in ("corrupted", "mean")
    }
    largest_key = str(largest)
    circuit = ranked[: settings.circuit_size]
    total = sum(abs(e) for _, e in circuit)
    error_share = sum(abs(e) for n, e in circuit if n.kind == "error") / total if total else 0.0
    check = exact_check(lens, _subset(prompts, settings.n_exact_prompts), settings.circuit_size)
    return {
        "task": task,
        "metric_clean": float(graph.settings["metric_clean"]),
        "metric_corrupted": float(graph.settings["metric_baseline"]),
        "nodes": [[n.id, e] for n, e in ranked],
        "circuit": [[n.site, n.index] for n, _ in circuit if n.kind == "feature"],
        "faithfulness": {k: f.score for k, f in scored["corrupted"].items()},
        "mean_faithfulness": {k: f.score for k, f in scored["mean"].items()},
        "circuit_metric": {k: f.circuit for k, f in scored["corrupted"].items()},
        "full_metric": scored["corrupted"][largest_key].full,
        "empty_metric": scored["corrupted"][largest_key].empty,
        "mean_empty_metric": scored["mean"][largest_key].empty,
        "error_share": error_share,
        "exact": check,
    }


def circuit_persistence(
    earlier: list[list[Any]],
    later: list[list[Any]],
    matches: Mapping[str, Mapping[int, int]],
) -> dict[str, float]:
    """How the features of a later circuit relate to an earlier one through a feature matching.

    earlier, later: circuit features as `[site, index]` at the earlier and the later checkpoint.
    matches: site -> {earlier feature index -> later feature index} (matched pairs only).
    Returns `persisted` (share of the later circuit's features whose earlier partner was in the
    earlier circuit), `matched` (share with any earlier partner: the feature existed before, but
    outside the circuit if not persisted), and `new` (share with no partner at all).
    """
    if not later:
        return {"persisted": float("nan"), "matched": float("nan"), "new": float("nan")}
    back = {
        (site, int(j)): (site, int(i)) for site, pairs in matches.items() for i, j in pairs.items()
    }
    before = {(site, int(i)) for site, i in earlier}
    persisted = matched = 0
    for site, index in later:
        partner = back.get((site, int(index)))
        if partner is not None:
            matched += 1
            persisted += partner in before
    n = len(later)
    return {"persisted": persisted / n, "matched": matched / n, "new": (n - matched) / n}
