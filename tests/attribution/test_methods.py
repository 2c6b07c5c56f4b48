"""Each attribution method against its own ground truth, on a float64 random model with one
dictionary of every kind (top-k, transcoder, standard, JumpReLU, gated)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    PromptState,
    candidate_nodes,
    direct_edges,
    exact_edges,
    exact_node_effects,
    gradient_edges,
    gradient_node_effects,
    integrated_gradient_node_effects,
)
from feature_lens.lens import EMBED_SITE
from tests.attribution.conftest import F64, make_state, read_feature, splice_reference_hooks
from tests.conftest import make_model, make_sae

METRIC = LogitDiff(correct=5, wrong=9)


def _metric_with_hooks(model: Any, tokens: torch.Tensor, hooks: list[tuple[str, Any]]) -> float:
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return float(logits[0, -1, 5] - logits[0, -1, 9])


def _some_features(nodes: list[Node], per_site: int = 3) -> list[Node]:
    picked: list[Node] = []
    for site in dict.fromkeys(n.site for n in nodes):
        picked += [n for n in nodes if n.site == site and n.kind == "feature"][:per_site]
    return picked


def test_exact_effects_equal_hand_written_interventions(
    lens64: Lens, model64: Any, state64: PromptState
) -> None:
    nodes = candidate_nodes(lens64, state64, "keep")
    chosen = _some_features(nodes) + [n for n in nodes if n.kind == "error"][:3]
    effects = exact_node_effects(lens64, state64, METRIC, chosen)
    clean = _metric_with_hooks(model64, state64.tokens, [])
    for node in chosen:
        base_f = state64.base.features[node.site]
        base_e = state64.base.errors[node.site]

        def edit(
            f: torch.Tensor,
            e: torch.Tensor,
            node: Node = node,
            base_f: torch.Tensor = base_f,
            base_e: torch.Tensor = base_e,
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if node.kind == "feature":
                f[0, node.pos, node.index] = base_f[0, node.pos, node.index]
            else:
                e[0, node.pos] = base_e[0, node.pos]
            return f, e

        patched = _metric_with_hooks(
            model64, state64.tokens, splice_reference_hooks(lens64, node.site, edit, {})
        )
        assert effects[node] == pytest.approx(clean - patched, abs=1e-10)
    assert max(abs(v) for v in effects.values()) > 1e-3


def test_exact_summed_position_nodes_patch_every_position(
    lens64: Lens, model64: Any, state64: PromptState
) -> None:
    node = next(n for n in candidate_nodes(lens64, state64, "sum") if n.kind == "feature")
    (effect,) = exact_node_effects(lens64, state64, METRIC, [node]).values()
    base_f = state64.base.features[node.site]

    def edit(f: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f[0, :, node.index] = base_f[0, :, node.index]
        return f, e

    clean = _metric_with_hooks(model64, state64.tokens, [])
    patched = _metric_with_hooks(
        model64, state64.tokens, splice_reference_hooks(lens64, node.site, edit, {})
    )
    assert effect == pytest.approx(clean - patched, abs=1e-10)


def test_token_nodes_patch_the_embedding(lens64: Lens, model64: Any, state64: PromptState) -> None:
    nodes = [n for n in candidate_nodes(lens64, state64, "keep") if n.kind == "token"]
    assert [n.pos for n in nodes] == [3, 6]  # where the corrupted prompt differs (after BOS)
    effects = exact_node_effects(lens64, state64, METRIC, nodes)
    corrupt_embed = state64.base.embeddings
    clean = _metric_with_hooks(model64, state64.tokens, [])
    for node in nodes:

        def swap(act: torch.Tensor, hook: Any, pos: int | None = node.pos) -> torch.Tensor:
            act = act.clone()
            act[0, pos] = corrupt_embed[0, pos]
            return act

        patched = _metric_with_hooks(model64, state64.tokens, [("blocks.0.hook_resid_pre", swap)])
        assert effects[node] == pytest.approx(clean - patched, abs=1e-10)


def test_exact_edges_equal_hand_written_interventions(
    lens64: Lens, model64: Any, state64: PromptState
) -> None:
    nodes = candidate_nodes(lens64, state64, "keep")
    upstream = [n for n in _some_features(nodes, 2) if n.site == "blocks.0.hook_resid_post"]
    downstream = [n for n in nodes if n.site == "blocks.1.hook_resid_post" and n.kind == "feature"][
        :4
    ]
    edges = exact_edges(lens64, state64, upstream, downstream)
    target_site = "blocks.1.hook_resid_post"
    clean = read_feature(model64, lens64, state64.tokens, [], target_site)
    for u in upstream:
        base_f = state64.base.features[u.site]

        def edit(
            f: torch.Tensor, e: torch.Tensor, u: Node = u, base_f: torch.Tensor = base_f
        ) -> tuple[torch.Tensor, torch.Tensor]:
            f[0, u.pos, u.index] = base_f[0, u.pos, u.index]
            return f, e

        patched = read_feature(
            model64,
            lens64,
            state64.tokens,
            splice_reference_hooks(lens64, u.site, edit, {}),
            target_site,
        )
        for d in downstream:
            expected = float(clean[0, d.pos, d.index] - patched[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-10)
    assert any(abs(w) > 1e-4 for w in edges.values())


def test_attribution_equals_exact_where_the_model_is_linear(tokenizer: Any) -> None:
    """Without LayerNorm, logits are affine in the last residual stream, so first order is exact
    for nodes there; at an earlier site (through attention and MLP) it is not."""
    from transformer_lens import HookedTransformer

    base = make_model(tokenizer, dtype=F64, seed=5)
    cfg = base.cfg.to_dict()
    cfg["normalization_type"] = None
    model = HookedTransformer(
        type(base.cfg)(
            **{
                k: v
                for k, v in cfg.items()
                if k
                in (
                    "n_layers",
                    "d_model",
                    "n_ctx",
                    "d_head",
                    "n_heads",
                    "d_mlp",
                    "d_vocab",
                    "act_fn",
                    "normalization_type",
                    "seed",
                    "dtype",
                    "model_name",
                )
            }
        ),
        tokenizer=tokenizer,
    )
    lens = Lens(
        model,
        [
            make_sae("standard", 16, "blocks.0.hook_resid_post", seed=7, dtype=F64),
            make_sae("gated", 16, "blocks.1.hook_resid_post", seed=8, dtype=F64),
        ],
    )
    prompts = PromptSet.build(lens, "w1 w5 w3 w9 w2", "w1 w6 w3 w8 w2", answers=[[5, 9]])
    state = make_state(lens, prompts)
    nodes = candidate_nodes(lens, state, "keep")
    exact = exact_node_effects(lens, state, METRIC, nodes)
    first_order = gradient_node_effects(lens, state, METRIC, nodes)
    last = [n for n in nodes if n.site == "blocks.1.hook_resid_post"]
    early = [n for n in nodes if n.site == "blocks.0.hook_resid_post"]
    assert len(last) > 5
    for node in last:
        assert first_order[node] == pytest.approx(exact[node], abs=1e-9)
    assert max(abs(first_order[n] - exact[n]) for n in early) > 1e-6


def test_integrated_gradients_converge_to_exact_site_patch(
    lens64: Lens, model64: Any, state64: PromptState
) -> None:
    """Completeness: the IG scores of all nodes of a site add up to the effect of patching the
    whole site (its output set to the corrupted run's), better with more steps."""
    site = "blocks.0.hook_resid_post"
    nodes = [n for n in candidate_nodes(lens64, state64, "keep") if n.site == site]
    _, corrupt_cache = model64.run_with_cache(lens64.to_tokens("w1 w5 w8 w9 w2 w6 w4"))
    exact = _metric_with_hooks(model64, state64.tokens, []) - _metric_with_hooks(
        model64, state64.tokens, [(site, lambda act, hook: corrupt_cache[site])]
    )
    errors = []
    for steps in (1, 4, 32):
        scores = integrated_gradient_node_effects(lens64, state64, METRIC, nodes, steps=steps)
        errors.append(abs(sum(scores.values()) - exact))
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 1e-3 * max(1.0, abs(exact))


def _finite_difference_edge(
    lens: Lens, model: Any, state: PromptState, u: Node, d: Node, eps: float = 1e-6
) -> float:
    delta = state.delta(u)[u.pos]  # a_u - b_u at u's position
    base_value = state.clean.features[u.site][0, u.pos, u.index] - eps * delta

    def edit(f: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f[0, u.pos, u.index] = base_value
        return f, e

    clean = read_feature(model, lens, state.tokens, [], d.site)[0, d.pos, d.index]
    nudged = read_feature(
        model, lens, state.tokens, splice_reference_hooks(lens, u.site, edit, {}), d.site
    )[0, d.pos, d.index]
    return float(clean - nudged) / eps


def test_total_edges_equal_finite_differences(
    lens64: Lens, model64: Any, state64: PromptState
) -> None:
    nodes = candidate_nodes(lens64, state64, "keep")
    upstream = [
        n
        for n in nodes
        if n.kind == "feature" and n.site in ("blocks.0.hook_attn_out", "blocks.0.hook_mlp_out")
    ][:6]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == "blocks.1.hook_resid_post"][
        :3
    ]
    edges = gradient_edges(lens64, state64, upstream, downstream)
    checked = 0
    for u in upstream:
        for d in downstream:
            expected = _finite_difference_edge(lens64, model64, state64, u, d)
            assert edges[(u, d)] == pytest.approx(expected, rel=1e-4, abs=1e-7)
            checked += abs(expected) > 1e-4
    assert checked >= 3


def test_straight_through_is_the_marks_semantics_and_detached_differs(
    model64: Any, lens64: Lens, state64: PromptState
) -> None:
    """Straight-through node scores are first-order exact-patching (downstream error terms
    recomputed), i.e. finite differences of the metric; the detached (SAE-Lens) mode is not."""
    node = next(
        n
        for n in candidate_nodes(lens64, state64, "keep")
        if n.kind == "feature"
        and n.site == "blocks.0.hook_attn_out"
        and abs(state64.delta(n)[n.pos]) > 1e-3
    )
    eps = 1e-6
    delta = state64.delta(node)[node.pos]

    def edit(f: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f[0, node.pos, node.index] -= eps * delta
        return f, e

    fd = (
        _metric_with_hooks(model64, state64.tokens, [])
        - _metric_with_hooks(
            model64, state64.tokens, splice_reference_hooks(lens64, node.site, edit, {})
        )
    ) / eps
    straight = gradient_node_effects(lens64, state64, METRIC, [node])[node]
    detached_lens = Lens(
        model64, [d.sae for d in lens64.dictionaries.values()], gradient_mode="detached"
    )
    detached = gradient_node_effects(detached_lens, state64, METRIC, [node])[node]
    assert straight == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert abs(detached - fd) > 1e-4 * max(1.0, abs(fd))


def _frozen_hooks(model: Any, clean_cache: Any, mlp: str) -> list[tuple[str, Any]]:
    hooks: list[tuple[str, Any]] = []
    for name in model.hook_dict:
        if name.endswith(("hook_scale", "attn.hook_pattern")):
            hooks.append((name, lambda act, hook: clean_cache[hook.name]))
    for layer in range(model.cfg.n_layers):
        if mlp == "stop":
            hooks.append((f"blocks.{layer}.hook_mlp_out", lambda act, hook: clean_cache[hook.name]))
        else:
            pre_name, post_name = f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.mlp.hook_post"
            gate = clean_cache[post_name] / clean_cache[pre_name]
            seen: dict[str, torch.Tensor] = {}
            hooks.append(
                (pre_name, lambda act, hook, seen=seen: seen.__setitem__("pre", act) or act)
            )
            hooks.append((post_name, lambda act, hook, seen=seen, gate=gate: seen["pre"] * gate))
    return hooks


UPSTREAM_GROUPS = {
    # Through attention layer 1: backward passes through the frozen model.
    "earlier blocks": ("blocks.0.hook_attn_out", "blocks.0.hook_resid_post", "embed"),
    # Same block, no attention in between: the closed form (with mlp="stop").
    "same block": ("blocks.1.hook_attn_out", "blocks.1.hook_resid_mid"),
}


@pytest.mark.parametrize("mlp", ["stop", "linear"])
@pytest.mark.parametrize("group", list(UPSTREAM_GROUPS))
def test_direct_edges_equal_frozen_interventions(
    lens64: Lens, model64: Any, state64: PromptState, mlp: str, group: str
) -> None:
    """Direct attribution == the change in the target's gated pre-activation when the source is
    set to its baseline in the model with LN scales, attention patterns and MLPs frozen."""
    nodes = candidate_nodes(lens64, state64, "keep")
    upstream = [
        n
        for n in nodes
        if n.kind in ("feature", "error", "token") and n.site in UPSTREAM_GROUPS[group]
    ][:12]
    target_site = "blocks.1.hook_resid_post"  # a gated SAE: pre = magnitude path
    downstream = [n for n in nodes if n.kind == "feature" and n.site == target_site][:3]
    edges = direct_edges(lens64, state64, upstream, downstream, mlp=mlp)  # type: ignore[arg-type]
    _, clean_cache = model64.run_with_cache(state64.tokens)
    sae = lens64.dictionary(target_site).sae

    def gated_pre(x: torch.Tensor) -> torch.Tensor:  # SAE-Lens's gated magnitude path, by hand
        with torch.no_grad():
            return (x - sae.b_dec) @ (sae.W_enc * sae.r_mag.exp()) + sae.b_mag

    pre_clean = gated_pre(clean_cache[target_site])
    gate = sae.encode(clean_cache[target_site]).detach() / pre_clean
    frozen = _frozen_hooks(model64, clean_cache, mlp)
    captured: dict[str, torch.Tensor] = {}
    grab = (target_site, lambda act, hook: captured.__setitem__("x", act) or act)
    with torch.no_grad():
        model64.run_with_hooks(state64.tokens, fwd_hooks=[*frozen, grab])
    torch.testing.assert_close(gated_pre(captured["x"]), pre_clean)  # freezing keeps the clean run
    largest = 0.0
    for u in upstream:
        if u.kind == "token":
            base_embed = state64.base.embeddings

            def patch(
                act: torch.Tensor,
                hook: Any,
                pos: int | None = u.pos,
                base_embed: torch.Tensor = base_embed,
            ) -> torch.Tensor:
                act = act.clone()
                act[0, pos] = base_embed[0, pos]
                return act

            hooks = [("blocks.0.hook_resid_pre", patch)]
        else:
            base_f, base_e = state64.base.features[u.site], state64.base.errors[u.site]

            def edit(
                f: torch.Tensor,
                e: torch.Tensor,
                u: Node = u,
                base_f: torch.Tensor = base_f,
                base_e: torch.Tensor = base_e,
            ) -> tuple[torch.Tensor, torch.Tensor]:
                if u.kind == "feature":
                    f[0, u.pos, u.index] = base_f[0, u.pos, u.index]
                else:
                    e[0, u.pos] = base_e[0, u.pos]
                return f, e

            hooks = splice_reference_hooks(lens64, u.site, edit, {})
        with torch.no_grad():
            model64.run_with_hooks(state64.tokens, fwd_hooks=[*frozen, *hooks, grab])
        change = pre_clean - gated_pre(captured["x"])
        for d in downstream:
            expected = float((gate * change)[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-10)
            largest = max(largest, abs(expected))
    assert largest > 1e-3


def test_direct_differs_from_total(lens64: Lens, state64: PromptState) -> None:
    nodes = candidate_nodes(lens64, state64, "keep")
    upstream = [n for n in nodes if n.kind == "feature" and n.site == "blocks.0.hook_attn_out"][:5]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == "blocks.1.hook_resid_post"][
        :3
    ]
    direct = direct_edges(lens64, state64, upstream, downstream)
    total = gradient_edges(lens64, state64, upstream, downstream)
    assert max(abs(direct[k] - total[k]) for k in direct) > 1e-4


def test_batched_and_unbatched_agree(lens64: Lens, state64: PromptState) -> None:
    nodes = candidate_nodes(lens64, state64, "keep")
    chosen = _some_features(nodes, 4)
    one = exact_node_effects(lens64, state64, METRIC, chosen, batch_size=1)
    many = exact_node_effects(lens64, state64, METRIC, chosen, batch_size=64)
    for node in chosen:
        assert one[node] == pytest.approx(many[node], abs=1e-12)
    downstream = [n for n in chosen if n.site == "blocks.1.hook_resid_post"]
    for fn in (gradient_edges, direct_edges, exact_edges):
        e1 = fn(lens64, state64, chosen, downstream, batch_size=1)
        e64 = fn(lens64, state64, chosen, downstream, batch_size=64)
        assert e1.keys() == e64.keys()
        for key in e1:
            assert e1[key] == pytest.approx(e64[key], abs=1e-12)


def test_zero_and_mean_baselines(lens64: Lens, model64: Any, prompts64: PromptSet) -> None:
    zero = make_state(lens64, prompts64, "zero")
    node = next(n for n in candidate_nodes(lens64, zero, "keep") if n.kind == "feature")
    assert float(zero.delta(node)[node.pos]) == pytest.approx(
        float(zero.clean.features[node.site][0, node.pos, node.index])
    )
    from feature_lens.attribution import baseline_values

    mean = baseline_values(
        lens64, prompts64, "mean", mean_tokens=lens64.to_tokens(["w1 w2 w3", "w4 w5 w6"])
    )
    assert mean.features[node.site].shape == (1, 1, lens64.dictionary(node.site).d_sae)
    assert EMBED_SITE == "embed"


@pytest.mark.parametrize("positions", ["keep", "sum"])
def test_direct_closed_form_equals_the_frozen_backward(
    lens64: Lens, state64: PromptState, positions: str
) -> None:
    from feature_lens.attribution import clean_freeze
    from feature_lens.attribution.direct import closed_form_pair

    nodes = candidate_nodes(lens64, state64, positions)  # type: ignore[arg-type]
    upstream = [
        n for n in nodes if n.site in ("blocks.1.hook_attn_out", "blocks.1.hook_resid_mid")
    ][:20]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == "blocks.1.hook_resid_post"][
        :4
    ]
    assert all(closed_form_pair(lens64, u, d) for u in upstream for d in downstream)
    closed = direct_edges(lens64, state64, upstream, downstream)
    freeze = clean_freeze(lens64, state64.tokens, mlp="stop")
    backward = gradient_edges(lens64, state64, upstream, downstream, freeze=freeze)
    assert closed.keys() == backward.keys()
    for key, value in backward.items():
        assert closed[key] == pytest.approx(value, abs=1e-10)
    assert max(abs(v) for v in closed.values()) > 1e-3
    early = next(n for n in nodes if n.site == "blocks.0.hook_resid_post")
    assert not closed_form_pair(lens64, early, downstream[0])  # attention layer 1 lies between


def test_edges_to_early_targets_stop_early_and_match_a_full_run(
    lens64: Lens, state64: PromptState
) -> None:
    """Targets in block 0: the run stops after block 0, later sites have no edges into them, and
    the scores equal those of a run through the whole model (exact patching at full length)."""
    nodes = candidate_nodes(lens64, state64, "keep")
    upstream = [
        n
        for n in nodes
        if n.site in ("blocks.0.hook_attn_out", "blocks.1.hook_resid_post", "embed")
    ][:10]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == "blocks.0.hook_resid_post"][
        :3
    ]
    edges = gradient_edges(lens64, state64, upstream, downstream)
    assert all(u.site != "blocks.1.hook_resid_post" for u, _ in edges)
    assert any(u.site == "blocks.0.hook_attn_out" for u, _ in edges)
    for (u, d), weight in edges.items():
        expected = (
            _finite_difference_edge(lens64, lens64.model, state64, u, d)
            if u.kind == "feature"
            else None
        )
        if expected is not None:
            assert weight == pytest.approx(expected, rel=1e-4, abs=1e-7)
