"""Issue 13's waste and options: one clean forward for attribution patching's scores, the
unembedding's transposed copy made once, exact patching of pre-selected nodes, and the reduced
dtypes (bfloat16, float16) against float32."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from feature_lens import InputError, Lens
from feature_lens.attribution import (
    LogitDiff,
    NodeActivation,
    PromptSet,
    attribute,
    candidate_nodes,
    feature,
    gradient_node_effects,
)
from feature_lens.attribution.state import StreamedStates
from feature_lens.lens.unembed import unembed_weight
from tests.attribution.conftest import CLEAN, CORRUPT, make_state
from tests.conftest import full_dictionaries, make_model

METRIC = LogitDiff()


class Counter:
    """Counts calls of a permanent hook (one per forward that reaches it)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, act: torch.Tensor, hook: Any) -> torch.Tensor:
        self.calls += 1
        return act


@pytest.fixture
def counters(lens64: Lens) -> Iterator[dict[str, Counter]]:
    """Forwards that embed tokens, and forwards that compute logits, of lens64's model."""
    model = lens64.model
    out = {"embed": Counter(), "unembed": Counter()}
    model.hook_embed.add_hook(out["embed"], is_permanent=True)
    model.unembed.hook_out.add_hook(out["unembed"], is_permanent=True)
    yield out
    model.hook_embed.remove_hooks(including_permanent=True)
    model.unembed.hook_out.remove_hooks(including_permanent=True)


@pytest.mark.parametrize("baseline", ["zero", "corrupted"])
def test_attribution_scores_take_one_clean_forward(
    lens64: Lens, prompts64: PromptSet, counters: dict[str, Counter], baseline: str
) -> None:
    states = StreamedStates(lens64, prompts64, baseline)  # type: ignore[arg-type]
    counters["embed"].calls = counters["unembed"].calls = 0
    state = next(states.iterate(gradients_for=METRIC))
    nodes = candidate_nodes(lens64, state, "keep")
    fused = gradient_node_effects(lens64, state, METRIC, nodes)
    # One forward of the clean prompt gives values and gradients; the corrupted prompt needs its
    # own (its values), the zero baseline none.
    expected = 1 if baseline == "zero" else 2
    assert counters["embed"].calls == expected
    assert counters["unembed"].calls == expected
    # The same scores as the separate forward + backward of a state built without gradients.
    separate = gradient_node_effects(lens64, make_state(lens64, prompts64, baseline), METRIC, nodes)
    assert counters["embed"].calls > expected  # that path does run its own forward
    for node in nodes:
        assert fused[node] == pytest.approx(separate[node], abs=1e-12)


def test_unembedding_transpose_is_made_once(tokenizer: Any, monkeypatch: Any) -> None:
    from transformer_lens.components.unembed import Unembed

    model = make_model(tokenizer, seed=5)
    lens = Lens(model, full_dictionaries(model))
    tokens = lens.to_tokens(CLEAN)
    with torch.no_grad():
        expected = model(tokens)

    def copying_forward(self: Any, residual: torch.Tensor) -> torch.Tensor:
        raise AssertionError("TransformerLens's Unembed.forward (a W_U.T copy) was called")

    monkeypatch.setattr(Unembed, "forward", copying_forward)
    with torch.no_grad():
        logits = lens.forward(tokens).logits
        again = lens.forward(tokens).logits
    assert torch.equal(logits, expected)  # bit-identical
    assert torch.equal(again, expected)
    first = unembed_weight(model.unembed)
    assert unembed_weight(model.unembed) is first  # cached, not copied again
    with torch.no_grad():
        model.unembed.W_U.mul_(2)  # an in-place write invalidates the cache
    assert unembed_weight(model.unembed) is not first
    assert torch.equal(unembed_weight(model.unembed), model.unembed.W_U.T)
    with torch.no_grad():
        assert torch.allclose(lens.forward(tokens).logits, 2 * expected - model.unembed.b_U)


def _interventions(lens: Lens, monkeypatch: Any) -> list[int]:
    """Rows of forwards that carry patches (with the corrupted baseline, every such row is one
    exact intervention)."""
    rows: list[int] = []
    forward = lens.forward

    def counting(tokens: torch.Tensor, plan: Any = None) -> Any:
        if plan is not None and plan.edits:
            rows.append(int(tokens.shape[0]))
        return forward(tokens, plan)

    monkeypatch.setattr(lens, "forward", counting)
    return rows


def test_preselected_exact_equals_full_exact(
    lens64: Lens, prompts64: PromptSet, monkeypatch: Any
) -> None:
    k = 7
    rows = _interventions(lens64, monkeypatch)
    full = attribute(
        lens64, prompts64, METRIC, method="exact", max_nodes=10**6, edges=False, progress=False
    )
    full_rows = sum(rows)
    rows.clear()
    pre = attribute(
        lens64,
        prompts64,
        METRIC,
        method="exact",
        max_nodes=10**6,
        edges=False,
        preselect=k,
        progress=False,
    )
    state = make_state(lens64, prompts64)
    candidates = candidate_nodes(lens64, state, "keep")
    assert full_rows == len(candidates) > 5 * k  # the full run patches every candidate
    assert sum(rows) == k  # pre-selection patches k nodes, nothing else
    assert pre.settings["preselect"] == k
    # The k nodes are the top k by |attribution-patching score|...
    scores = gradient_node_effects(lens64, state, LogitDiff(correct=5, wrong=9), candidates)
    top = sorted(candidates, key=lambda n: -abs(scores[n]))[:k]
    kept = {node.node for node in pre.nodes.values() if node.kind != "logit"}
    assert kept <= set(top)
    assert len(kept) >= k - 1  # (an exact effect of 0 drops a node)
    # ...and their effects are the full exact run's, to float64 precision.
    for node_id, node in pre.nodes.items():
        if node.kind != "logit":
            assert node.effect == pytest.approx(full.nodes[node_id].effect, rel=1e-12, abs=1e-13)


def test_preselect_bad_input(lens64: Lens, prompts64: PromptSet) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="preselect"):
            attribute(lens64, prompts64, METRIC, method="exact", preselect=bad, progress=False)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not 'attribution'"):
        attribute(lens64, prompts64, METRIC, method="attribution", preselect=5, progress=False)


@pytest.fixture(scope="module")
def dtype_lenses(tokenizer: Any) -> dict[torch.dtype, Lens]:
    """The same float32 weights, and cast to bfloat16 and float16."""
    model = make_model(tokenizer, seed=3)
    dictionaries = full_dictionaries(model)
    lenses = {torch.float32: Lens(model, dictionaries)}
    for dtype in (torch.bfloat16, torch.float16):
        low = copy.deepcopy(model).to(dtype)
        lenses[dtype] = Lens(low, [copy.deepcopy(d).to(dtype) for d in dictionaries])
    return lenses


@pytest.mark.parametrize("method", ["exact", "attribution", "ig", "direct"])
def test_reduced_dtypes_agree_with_float32(
    dtype_lenses: dict[torch.dtype, Lens], method: str
) -> None:
    """Every method runs in bfloat16 and float16 (CPU) and agrees with float32 on the same
    weights (cast): node effects within a tolerance (bfloat16 10 %, float16 2 %) of the larger
    of the largest float32 effect and the clean metric (an exact effect is a difference of two
    metric values, so its rounding error scales with the metric), edges within it of the largest
    float32 edge."""
    graphs = {}
    for dtype, lens in dtype_lenses.items():
        prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
        graphs[dtype] = attribute(
            lens, prompts, METRIC, method=method, max_nodes=12, ig_steps=4, progress=False
        )
    ref = graphs[torch.float32]
    effect_scale = max(
        *(abs(n.effect) for n in ref.nodes.values()), abs(ref.settings["metric_clean"])
    )
    edge_scale = max(abs(v) for v in ref.edges.values())
    for dtype, tolerance in ((torch.bfloat16, 0.1), (torch.float16, 0.02)):
        got = graphs[dtype]
        assert got.settings["metric_clean"] == pytest.approx(ref.settings["metric_clean"], rel=0.05)
        common = set(ref.nodes) & set(got.nodes)
        assert len(common) >= len(ref.nodes) - 3
        for node_id in common:
            difference = abs(ref.nodes[node_id].effect - got.nodes[node_id].effect)
            assert difference <= tolerance * effect_scale, (dtype, node_id)
        shared = set(ref.edges) & set(got.edges)
        assert len(shared) > len(ref.edges) // 2
        for edge in shared:
            assert abs(ref.edges[edge] - got.edges[edge]) <= tolerance * edge_scale, (dtype, edge)


@pytest.mark.parametrize("mode", ["straight_through", "detached"])
def test_fused_scores_equal_separate_for_every_metric_and_mode(
    lens64: Lens, prompts64: PromptSet, mode: str
) -> None:
    """The one-forward path gives the separate path's scores for a logit metric and a feature
    target, in both gradient modes (float64)."""
    lens = Lens(lens64.model, list(lens64.dictionaries.values()), gradient_mode=mode)  # type: ignore[arg-type]
    target = NodeActivation(feature("blocks.1.hook_resid_post", 5, 3))
    for metric in (LogitDiff(correct=5, wrong=9), target):
        state = next(StreamedStates(lens, prompts64, "corrupted").iterate(gradients_for=metric))
        assert state.metric_gradients is not None
        nodes = candidate_nodes(lens, state, "keep")
        fused = gradient_node_effects(lens, state, metric, nodes)
        separate = gradient_node_effects(lens, make_state(lens, prompts64), metric, nodes)
        assert any(abs(v) > 1e-6 for v in separate.values())
        for node in nodes:
            assert fused[node] == pytest.approx(separate[node], abs=1e-12)
