"""Directions as features and steering, against independent computations."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Directions, InputError, Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    PromptState,
    attribute,
    baseline_values,
    exact_edges,
    gradient_edges,
    gradient_node_effects,
    node_values,
)
from feature_lens.errors import IncompatibleDictionaryError
from feature_lens.steering import steer
from tests.conftest import full_dictionaries, make_model

F64 = torch.float64
HOOK = "blocks.1.hook_resid_post"
CLEAN, CORRUPT = "w1 w5 w3 w9 w2 w7 w4", "w1 w5 w8 w9 w2 w6 w4"


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    return make_model(tokenizer, dtype=F64, seed=11)


@pytest.fixture(scope="module")
def lens(model: Any) -> Lens:
    vectors = torch.randn(3, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    early = Directions(vectors[:2], "blocks.0.hook_resid_post", labels=["a", "b"])
    late = Directions(vectors[2], HOOK, labels=["c"])
    return Lens(model, [*full_dictionaries(model, dtype=F64), early, late])


def _state(lens: Lens, baseline: str = "zero") -> PromptState:
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    base = baseline_values(lens, prompts, baseline)  # type: ignore[arg-type]
    return PromptState(
        prompts.clean, prompts.answers, node_values(lens, prompts.clean), base.row(0)
    )


def test_directions_share_a_hook_with_an_sae_and_keep_the_splice_exact(
    lens: Lens, model: Any
) -> None:
    assert f"{HOOK}:directions" in lens.sites
    assert HOOK in lens.sites  # the gated SAE at the same hook
    tokens = lens.to_tokens(CLEAN)
    run = lens.run(tokens)
    torch.testing.assert_close(run.logits, model(tokens), atol=1e-10, rtol=0)
    _, cache = model.run_with_cache(tokens)
    direction = lens.dictionary(f"{HOOK}:directions")
    expected = cache[HOOK] @ (direction.vectors[0] / direction.vectors[0].norm())
    torch.testing.assert_close(run.features[f"{HOOK}:directions"][..., 0], expected)


def test_decoder_row_direction_gets_the_features_gradient(model: Any) -> None:
    """With v = W_dec[i] (unnormalised), moving the direction's activation by d adds d*W_dec[i],
    exactly what moving feature i by d does: their gradients are equal."""
    base = Lens(model, full_dictionaries(model, dtype=F64))
    site = "blocks.0.hook_resid_post"
    state = _state(base)
    active = torch.nonzero(state.clean.features[site][0] > 0)[:3].tolist()
    indices = [i for _, i in active]
    lens = base.attach(Directions.from_decoder(base, site, indices, normalize=False))
    state = _state(lens)
    metric = LogitDiff()
    for j, (pos, i) in enumerate(active):
        feat, direc = Node("feature", site, pos, i), Node("feature", f"{site}:decoder", pos, j)
        scores = gradient_node_effects(lens, state, metric, [feat, direc])
        grad_feat = scores[feat] / float(state.clean.features[site][0, pos, i])
        grad_dir = scores[direc] / float(state.clean.features[f"{site}:decoder"][0, pos, j])
        assert grad_dir == pytest.approx(grad_feat, rel=1e-9)


def test_edges_into_a_direction(lens: Lens, model: Any) -> None:
    """A direction as the downstream node: exact edges equal a hand-written patch read through the
    projection, and first-order edges equal finite differences."""
    state = _state(lens, "corrupted")
    site = f"{HOOK}:directions"
    target = Node("feature", site, 5, 0)
    upstream = [
        Node("feature", "blocks.0.hook_resid_post:directions", p, j) for p in (3, 5) for j in (0, 1)
    ]
    exact = exact_edges(lens, state, upstream, [target])
    first = gradient_edges(lens, state, upstream, [target])
    unit = lens.dictionary(site).W_dec[0]
    early = lens.dictionary("blocks.0.hook_resid_post:directions")
    for u in upstream:
        delta = float(state.delta(u)[u.pos])

        def run(shift: float, u: Node = u) -> float:
            def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
                act = act.clone()
                act[0, u.pos] -= shift * early.W_dec[u.index]
                return act

            out: dict[str, torch.Tensor] = {}
            with torch.no_grad():
                model.run_with_hooks(
                    state.tokens,
                    fwd_hooks=[
                        ("blocks.0.hook_resid_post", hook),
                        (HOOK, lambda a, hook: out.__setitem__("x", a) or a),
                    ],
                )
                return float(out["x"][0, target.pos] @ unit)

        clean = run(0.0)
        assert exact[(u, target)] == pytest.approx(clean - run(delta), abs=1e-10)
        eps = 1e-6
        assert first[(u, target)] == pytest.approx(
            (clean - run(eps * delta)) / eps, rel=1e-4, abs=1e-8
        )


def test_directions_in_every_method(lens: Lens) -> None:
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    for method in ("exact", "attribution", "direct"):
        graph = attribute(lens, prompts, LogitDiff(), method=method, max_nodes=400, progress=False)  # type: ignore[arg-type]
        assert any(n.site.endswith(":directions") for n in graph.nodes.values())


def test_mean_difference_direction(lens: Lens, model: Any) -> None:
    pos, neg = ["w1 w2 w3", "w4 w2 w3"], ["w1 w2 w9", "w4 w2 w8"]
    direction = Directions.from_mean_difference(lens, HOOK, pos, neg, label="3 vs 9")
    _, c_pos = model.run_with_cache(lens.to_tokens(pos))
    _, c_neg = model.run_with_cache(lens.to_tokens(neg))
    expected = c_pos[HOOK][:, -1].mean(0) - c_neg[HOOK][:, -1].mean(0)
    torch.testing.assert_close(direction.vectors[0], expected / expected.norm())
    assert direction.labels == ["3 vs 9"]


def test_steering_matches_a_hand_written_addition(lens: Lens, model: Any) -> None:
    direction = lens.dictionary("blocks.0.hook_resid_post:directions")
    assert isinstance(direction, Directions)
    result = steer(lens, CLEAN, direction, 3.0, index=1, max_new_tokens=2)
    tokens = lens.to_tokens(CLEAN)
    vector = direction.W_dec[1]
    steered = model.run_with_hooks(
        tokens, fwd_hooks=[("blocks.0.hook_resid_post", lambda a, hook: a + 3.0 * vector)]
    )
    torch.testing.assert_close(result.logit_change, (steered - model(tokens))[:, -1])
    assert result.promoted[0][1] == pytest.approx(float(result.logit_change[0].max()))
    assert result.suppressed[0][1] == pytest.approx(float(result.logit_change[0].min()))
    # Features after the hook move; features before it do not appear.
    assert "blocks.1.hook_resid_post" in result.feature_change
    assert "blocks.0.hook_attn_out" not in result.feature_change
    assert float(result.feature_change["blocks.1.hook_resid_post"].abs().max()) > 1e-3
    assert len(result.generations) == 1
    assert steer(lens, CLEAN, direction, 0.0).logit_change.abs().max() == 0


def test_direction_errors(lens: Lens, model: Any) -> None:
    with pytest.raises(InputError, match="zero norm"):
        Directions(torch.zeros(16), HOOK)
    with pytest.raises(InputError, match="labels"):
        Directions(torch.ones(2, 16), HOOK, labels=["x"])
    with pytest.raises(IncompatibleDictionaryError, match="expects width 8"):
        Lens(model, [Directions(torch.ones(8, dtype=F64), HOOK)])
    with pytest.raises(InputError, match="out of range"):
        Directions.from_decoder(lens, "blocks.0.hook_resid_post", [999])
