"""The three methods on the embedded model (float64), each against its own ground truth."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    PromptSet,
    PromptState,
    baseline_values,
    candidate_nodes,
    direct_edges,
    exact_node_effects,
    gradient_edges,
    node_values,
)
from tests.attribution.conftest import read_feature, splice_reference_hooks
from tests.attribution.test_methods import _frozen_hooks


@pytest.fixture(scope="module")
def zoo64() -> Lens:
    return Lens.load(dtype=torch.float64)


@pytest.fixture(scope="module")
def ioi(zoo64: Lens) -> PromptState:
    from feature_lens.zoo import task_prompts

    pairs = task_prompts("ioi", 1)
    prompts = PromptSet.build(
        zoo64, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
    )
    base = baseline_values(zoo64, prompts, "corrupted")
    return PromptState(
        prompts.clean, prompts.answers, node_values(zoo64, prompts.clean), base.row(0)
    )


def test_exact_effects_on_the_zoo(zoo64: Lens, ioi: PromptState) -> None:
    nodes = [n for n in candidate_nodes(zoo64, ioi, "keep") if n.kind == "feature"]
    chosen = sorted(nodes, key=lambda n: -abs(float(ioi.delta(n)[n.pos])))[:6]
    effects = exact_node_effects(zoo64, ioi, LogitDiff(), chosen)
    model = zoo64.model
    correct, wrong = int(ioi.answers[0, 0]), int(ioi.answers[0, 1])  # type: ignore[index]

    def metric(hooks: list[tuple[str, Any]]) -> float:
        with torch.no_grad():
            logits = model.run_with_hooks(ioi.tokens, fwd_hooks=hooks)
        return float(logits[0, -1, correct] - logits[0, -1, wrong])

    clean = metric([])
    for node in chosen:
        base_f = ioi.base.features[node.site]

        def edit(
            f: torch.Tensor, e: torch.Tensor, node: Any = node, base_f: torch.Tensor = base_f
        ) -> tuple[torch.Tensor, torch.Tensor]:
            f[0, node.pos, node.index] = base_f[0, node.pos, node.index]
            return f, e

        assert effects[node] == pytest.approx(
            clean - metric(splice_reference_hooks(zoo64, node.site, edit, {})), abs=1e-9
        )
    assert max(abs(v) for v in effects.values()) > 1e-2


def test_total_edges_on_the_zoo_equal_finite_differences(zoo64: Lens, ioi: PromptState) -> None:
    nodes = [n for n in candidate_nodes(zoo64, ioi, "keep") if n.kind == "feature"]
    upstream = [n for n in nodes if n.site == "blocks.0.hook_resid_post"][:4]
    downstream = [n for n in nodes if n.site == "blocks.2.hook_resid_post"][:3]
    edges = gradient_edges(zoo64, ioi, upstream, downstream)
    eps = 1e-6
    for u in upstream:
        delta = float(ioi.delta(u)[u.pos])
        value = float(ioi.clean.features[u.site][0, u.pos, u.index]) - eps * delta

        def edit(
            f: torch.Tensor, e: torch.Tensor, u: Any = u, value: float = value
        ) -> tuple[torch.Tensor, torch.Tensor]:
            f[0, u.pos, u.index] = value
            return f, e

        nudged = read_feature(
            zoo64.model,
            zoo64,
            ioi.tokens,
            splice_reference_hooks(zoo64, u.site, edit, {}),
            downstream[0].site,
        )
        clean = read_feature(zoo64.model, zoo64, ioi.tokens, [], downstream[0].site)
        for d in downstream:
            expected = float(clean[0, d.pos, d.index] - nudged[0, d.pos, d.index]) / eps
            # TopK can switch which features are selected under a nudge; these are far from it.
            assert edges[(u, d)] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_direct_edges_on_the_zoo_equal_frozen_interventions(zoo64: Lens, ioi: PromptState) -> None:
    nodes = candidate_nodes(zoo64, ioi, "keep")
    target_site = "blocks.1.hook_resid_post"
    upstream = [
        n
        for n in nodes
        if n.site in ("blocks.0.hook_resid_post", "blocks.1.hook_attn_out") and n.kind == "feature"
    ][:10]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == target_site][:3]
    edges = direct_edges(zoo64, ioi, upstream, downstream)
    model = zoo64.model
    _, clean_cache = model.run_with_cache(ioi.tokens)
    sae = zoo64.dictionary(target_site).sae

    def pre(x: torch.Tensor) -> torch.Tensor:  # TopK SAE pre-activation, by hand
        with torch.no_grad():
            return (x - sae.b_dec) @ sae.W_enc + sae.b_enc

    pre_clean = pre(clean_cache[target_site])
    gate = sae.encode(clean_cache[target_site]).detach() / pre_clean
    frozen = _frozen_hooks(model, clean_cache, "stop")
    captured: dict[str, torch.Tensor] = {}
    grab = (target_site, lambda act, hook: captured.__setitem__("x", act) or act)
    largest = 0.0
    for u in upstream:
        base_f = ioi.base.features[u.site]

        def edit(
            f: torch.Tensor, e: torch.Tensor, u: Any = u, base_f: torch.Tensor = base_f
        ) -> tuple[torch.Tensor, torch.Tensor]:
            f[0, u.pos, u.index] = base_f[0, u.pos, u.index]
            return f, e

        with torch.no_grad():
            model.run_with_hooks(
                ioi.tokens,
                fwd_hooks=[*frozen, *splice_reference_hooks(zoo64, u.site, edit, {}), grab],
            )
        change = gate * (pre_clean - pre(captured["x"]))
        for d in downstream:
            expected = float(change[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-9)
            largest = max(largest, abs(expected))
    assert largest > 1e-3
