"""circuit-tracer cross-layer transcoders (W_enc_L / W_dec_L safetensors + config.yaml) load as one
site per layer whose features write into every later layer, the splice is an identity, and every
method on them equals an independent computation written with raw TransformerLens hooks and
circuit-tracer's formulas by hand (float64, a 3-layer random model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens, load_sae
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
from feature_lens.attribution.direct import direct_node_effects
from feature_lens.errors import LoadingError
from feature_lens.lens import CrossLayerSite
from tests.attribution.conftest import CLEAN, CORRUPT, make_state
from tests.circuit_tracer_clt_format import (
    Weights,
    clt_encode,
    clt_pre,
    clt_reconstruct,
    clt_write,
    write_clt,
)
from tests.conftest import make_model

F64 = torch.float64
METRIC = LogitDiff(correct=5, wrong=9)
N_LAYERS = 3
KINDS = {  # fixture name -> (JumpReLU?, circuit-tracer's feature_input_hook)
    "relu": (False, "mlp.hook_in"),
    "jumprelu": (True, "mlp.hook_in"),
    "resid_mid": (False, "hook_resid_mid"),
}
OUT = "blocks.{}.hook_mlp_out"


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    return make_model(tokenizer, n_layers=N_LAYERS, dtype=F64, seed=11)


@pytest.fixture(scope="module", params=list(KINDS))
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: Any):
    kind: str = request.param
    folder = tmp_path_factory.mktemp("clt") / kind
    jumprelu, input_hook = KINDS[kind]
    weights = write_clt(
        folder,
        n_layers=N_LAYERS,
        d_model=model.cfg.d_model,
        jumprelu=jumprelu,
        seed=3 + list(KINDS).index(kind),
        input_hook=input_hook,
    )
    weights = [{k: v.to(F64) for k, v in w.items()} for w in weights]
    lens = Lens.load(model, folder, dtype=F64)
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    return kind, folder, weights, lens, make_state(lens, prompts)


def IN(lens: Lens, layer: int) -> str:
    """The hook layer `layer`'s encoder reads (`mlp.hook_in` is `ln2.hook_normalized`)."""
    return lens.dictionary(OUT.format(layer)).hook_in


def _features(lens: Lens, weights: Weights, cache: Any) -> list[torch.Tensor]:
    return [clt_encode(weights, layer, cache[IN(lens, layer)]) for layer in range(N_LAYERS)]


def test_loads_one_site_per_layer_with_circuit_tracer_semantics(setup: Any) -> None:
    kind, folder, weights, lens, _ = setup
    expected_in = "ln2.hook_normalized" if KINDS[kind][1] == "mlp.hook_in" else "hook_resid_mid"
    loaded = load_sae(folder, dtype=F64)
    assert isinstance(loaded, list)
    assert len(loaded) == N_LAYERS
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    for layer, site in enumerate(loaded):
        assert isinstance(site, CrossLayerSite)
        assert site.hook_in == f"blocks.{layer}.{expected_in}"
        assert site.hook_out == OUT.format(layer)
        assert site.kind == "cross_layer_transcoder"
        assert site.model_name == "tiny-test-model"
        f = site.encode(x)
        torch.testing.assert_close(f, clt_encode(weights, layer, x), atol=1e-12, rtol=0)
        assert 0 < int((f > 0).sum()) < f.numel()
        writes = site.writes()
        assert [s for s, _ in writes] == [OUT.format(k) for k in range(layer, N_LAYERS)]
        for k, (_, w) in zip(range(layer, N_LAYERS), writes, strict=True):
            torch.testing.assert_close(w, clt_write(weights, layer, k), atol=0, rtol=0)
        total = sum(clt_write(weights, layer, k) for k in range(layer, N_LAYERS))
        torch.testing.assert_close(site.W_dec, total, atol=1e-12, rtol=0)
    assert lens.sites == [OUT.format(k) for k in range(N_LAYERS)]


def test_splice_is_an_identity_and_errors_are_circuit_tracers(setup: Any) -> None:
    _, _, weights, lens, state = setup
    model = lens.model
    with torch.no_grad():
        run = lens.run(state.tokens)
        logits, cache = model.run_with_cache(state.tokens)
        replaced = lens.forward(state.tokens, _no_error_plan())
    torch.testing.assert_close(run.logits, logits, atol=1e-12, rtol=0)
    features = _features(lens, weights, cache)
    for layer in range(N_LAYERS):
        site = OUT.format(layer)
        expected_error = cache[site] - clt_reconstruct(weights, layer, features)
        torch.testing.assert_close(run.features[site], features[layer], atol=1e-12, rtol=0)
        torch.testing.assert_close(run.errors[site], expected_error, atol=1e-12, rtol=0)
        assert float(expected_error.abs().max()) > 1e-3
    # Without error terms the model runs on the CLT's reconstructions (the replacement model).
    with torch.no_grad():
        seen: list[torch.Tensor] = []

        def replace(act: torch.Tensor, hook: Any) -> torch.Tensor:
            x_in = seen_inputs[hook.layer()]
            seen.append(x_in)
            feats = [clt_encode(weights, layer, seen_inputs[layer]) for layer in seen_inputs]
            return clt_reconstruct(weights, hook.layer(), feats)

        seen_inputs: dict[int, torch.Tensor] = {}
        hooks: list[tuple[str, Any]] = []
        for layer in range(N_LAYERS):
            hooks.append(
                (IN(lens, layer), lambda a, hook: seen_inputs.__setitem__(hook.layer(), a))
            )
            hooks.append((OUT.format(layer), replace))
        expected = model.run_with_hooks(state.tokens, fwd_hooks=hooks)
    torch.testing.assert_close(replaced.logits, expected, atol=1e-10, rtol=0)
    assert float((expected - logits).abs().max()) > 1e-3


def _no_error_plan() -> Any:
    from feature_lens.lens import RunPlan

    return RunPlan(error_term=False)


def _metric(model: Any, tokens: torch.Tensor, hooks: list[tuple[str, Any]]) -> float:
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return float(logits[0, -1, 5] - logits[0, -1, 9])


def _write_hooks(
    weights: Weights, state: PromptState, node: Node, scale: float = 1.0
) -> list[tuple[str, Any]]:
    """Raw hooks moving `node` from its clean value to its baseline (times `scale`): a feature of
    layer l adds `(b - a) W_{l->k}[i]` to every layer k >= l's MLP output; an error adds
    `err_b - err` to its own layer's; a token `emb_b - emb` to the embedding."""
    assert node.pos is not None
    if node.kind == "feature":
        assert node.index is not None
        layer = int(node.site.split(".")[1])
        d = float(state.delta(node)[node.pos])
        changes = [
            (OUT.format(k), -d * clt_write(weights, layer, k)[node.index])
            for k in range(layer, N_LAYERS)
        ]
    elif node.kind == "error":
        changes = [(node.site, -state.delta(node)[node.pos])]
    else:
        changes = [("blocks.0.hook_resid_pre", -state.delta(node)[node.pos])]
    hooks: list[tuple[str, Any]] = []
    for name, change in changes:

        def hook(act: torch.Tensor, hook: Any, change: torch.Tensor = change) -> torch.Tensor:
            act = act.clone()
            act[0, node.pos] += scale * change
            return act

        hooks.append((name, hook))
    return hooks


def _some_nodes(lens: Lens, state: PromptState) -> list[Node]:
    nodes = candidate_nodes(lens, state, "keep")
    picked: list[Node] = []
    for site in lens.sites:
        picked += [n for n in nodes if n.site == site and n.kind == "feature"][:3]
        picked += [n for n in nodes if n.site == site and n.kind == "error"][:1]
    return picked


def test_exact_and_attribution_patching_equal_hand_written_patches(setup: Any) -> None:
    """Exact patching = the hooked patch at every layer the feature writes; attribution
    patching = the finite difference of that patch."""
    _, _, weights, lens, state = setup
    chosen = _some_nodes(lens, state)
    assert any(n.kind == "feature" and n.site == OUT.format(0) for n in chosen)
    exact = exact_node_effects(lens, state, METRIC, chosen)
    gradient = gradient_node_effects(lens, state, METRIC, chosen)
    clean = _metric(lens.model, state.tokens, [])
    eps = 1e-6
    for node in chosen:
        patched = _metric(lens.model, state.tokens, _write_hooks(weights, state, node))
        assert exact[node] == pytest.approx(clean - patched, abs=1e-10), node
        nudged = _metric(lens.model, state.tokens, _write_hooks(weights, state, node, eps))
        assert gradient[node] == pytest.approx((clean - nudged) / eps, rel=1e-4, abs=1e-8), node
    assert max(abs(v) for v in exact.values()) > 1e-4


def test_a_feature_writing_into_later_layers_differs_from_its_own_layer_write(setup: Any) -> None:
    """The later-layer writes matter: patching only the own-layer decoder gives another number."""
    _, _, weights, lens, state = setup
    node = next(n for n in _some_nodes(lens, state) if n.site == OUT.format(0))
    exact = exact_node_effects(lens, state, METRIC, [node])[node]
    own_only = _write_hooks(weights, state, node)[:1]
    assert (
        abs(
            exact
            - (_metric(lens.model, state.tokens, []) - _metric(lens.model, state.tokens, own_only))
        )
        > 1e-6
    )


def _target_value(
    weights: Weights, layer: int, x: torch.Tensor, gate: torch.Tensor
) -> torch.Tensor:
    return gate * clt_pre(weights, layer, x)


def test_edges_equal_interventions(setup: Any) -> None:
    """Exact edges = a_d(clean) - a_d(u patched by hooks); attribution edges = the finite
    difference of the gated target under that patch (targets: layer-2 features)."""
    _, _, weights, lens, state = setup
    model = lens.model
    nodes = candidate_nodes(lens, state, "keep")
    upstream = [n for n in _some_nodes(lens, state) if n.site != OUT.format(2)]
    upstream += [n for n in nodes if n.kind == "token"][:2]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == OUT.format(2)][:4]
    assert downstream
    exact = exact_edges(lens, state, upstream, downstream)
    first = gradient_edges(lens, state, upstream, downstream)
    _, clean = model.run_with_cache(state.tokens)
    x_clean = clean[IN(lens, 2)]
    gate = (clt_encode(weights, 2, x_clean) != 0).to(F64)
    a_clean = clt_encode(weights, 2, x_clean)
    captured: dict[str, torch.Tensor] = {}
    grab = (IN(lens, 2), lambda act, hook: captured.__setitem__("x", act))
    eps, largest = 1e-6, 0.0
    for u in upstream:
        _metric(model, state.tokens, [*_write_hooks(weights, state, u), grab])
        patched = clt_encode(weights, 2, captured["x"])
        _metric(model, state.tokens, [*_write_hooks(weights, state, u, eps), grab])
        nudged = _target_value(weights, 2, captured["x"], gate)
        for d in downstream:
            assert d.pos is not None
            assert d.index is not None
            expected = float(a_clean[0, d.pos, d.index] - patched[0, d.pos, d.index])
            assert exact[(u, d)] == pytest.approx(expected, abs=1e-10), (u, d)
            fd = (
                float(
                    _target_value(weights, 2, x_clean, gate)[0, d.pos, d.index]
                    - nudged[0, d.pos, d.index]
                )
                / eps
            )
            assert first[(u, d)] == pytest.approx(fd, rel=1e-4, abs=1e-8), (u, d)
            largest = max(largest, abs(expected))
    assert largest > 1e-4


def _frozen(model: Any, clean: Any) -> list[tuple[str, Any]]:
    """circuit-tracer's local replacement model as raw hooks: LN scales, attention patterns and
    MLP outputs held at their clean values."""
    hooks: list[tuple[str, Any]] = []
    for name in model.hook_dict:
        if name.endswith(("hook_scale", "attn.hook_pattern", "hook_mlp_out")):
            hooks.append((name, lambda act, hook: clean[hook.name]))
    return hooks


def test_direct_attribution_equals_interventions_in_the_frozen_model(setup: Any) -> None:
    """Direct edges into layer-2 features = the change in their gated pre-activation when a
    layer-0/1 node is patched (writes into layers 0, 1 included) in the frozen model; direct
    node effects = the change of the metric there."""
    _, _, weights, lens, state = setup
    model = lens.model
    nodes = candidate_nodes(lens, state, "keep")
    upstream = [n for n in _some_nodes(lens, state) if n.site != OUT.format(2)]
    upstream += [n for n in nodes if n.kind == "token"][:2]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == OUT.format(2)][:4]
    edges = direct_edges(lens, state, upstream, downstream, mlp="stop")
    effects = direct_node_effects(lens, state, METRIC, _some_nodes(lens, state))
    _, clean = model.run_with_cache(state.tokens)
    frozen = _frozen(model, clean)
    x_clean = clean[IN(lens, 2)]
    gate = (clt_encode(weights, 2, x_clean) != 0).to(F64)
    captured: dict[str, torch.Tensor] = {}
    grab = (IN(lens, 2), lambda act, hook: captured.__setitem__("x", act))
    largest = 0.0
    for u in upstream:
        # Hooks run in order: the frozen value is held first, then the write is added to it.
        _metric(model, state.tokens, [*frozen, *_write_hooks(weights, state, u), grab])
        change = gate * (clt_pre(weights, 2, x_clean) - clt_pre(weights, 2, captured["x"]))
        for d in downstream:
            assert d.pos is not None
            assert d.index is not None
            expected = float(change[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-10), (u, d)
            largest = max(largest, abs(expected))
    assert largest > 1e-4
    base = _metric(model, state.tokens, frozen)
    for node, value in effects.items():
        patched = _metric(model, state.tokens, [*frozen, *_write_hooks(weights, state, node)])
        assert value == pytest.approx(base - patched, abs=1e-10), node


def test_integrated_gradients_add_up_to_the_site_patch(setup: Any) -> None:
    """Completeness: IG scores of every node of layer 0's site (features writing into all three
    layers, and the error) sum to the effect of patching them all to the corrupted run's, by
    hooks; closer with more steps."""
    _, _, weights, lens, state = setup
    model = lens.model
    site = OUT.format(0)
    nodes = [n for n in candidate_nodes(lens, state, "keep") if n.site == site]
    f_clean = state.clean.features[site][0]
    f_base = state.base.features[site][0]
    err_change = state.base.errors[site][0] - state.clean.errors[site][0]

    def patch(k: int) -> Any:
        change = (f_base - f_clean) @ clt_write(weights, 0, k)
        if k == 0:
            change = change + err_change
        return lambda act, hook: act + change

    exact = _metric(model, state.tokens, []) - _metric(
        model, state.tokens, [(OUT.format(k), patch(k)) for k in range(N_LAYERS)]
    )
    errors = []
    for steps in (1, 32):
        scores = integrated_gradient_node_effects(lens, state, METRIC, nodes, steps=steps)
        errors.append(abs(sum(scores.values()) - exact))
    assert errors[1] < 1e-3 * max(1.0, abs(exact))
    assert errors[1] <= errors[0]
    assert abs(exact) > 1e-4


def test_malformed_folders_are_refused_with_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "clt"
    write_clt(folder, n_layers=3, d_model=16)
    (folder / "W_dec_1.safetensors").unlink()
    with pytest.raises(LoadingError, match=r"no W_dec_1\.safetensors"):
        load_sae(folder)
    write_clt(folder, n_layers=3, d_model=16)
    (folder / "W_enc_1.safetensors").unlink()
    with pytest.raises(LoadingError, match=r"no W_enc_1\.safetensors"):
        load_sae(folder)
    write_clt(folder, n_layers=2, d_model=16)
    for name in ("W_enc_2.safetensors", "W_dec_2.safetensors"):
        (folder / name).unlink()
    from safetensors.torch import save_file

    # A decoder that writes into too few layers.
    save_file({"W_dec_0": torch.zeros(24, 1, 16)}, str(folder / "W_dec_0.safetensors"))
    with pytest.raises(LoadingError, match=r"inconsistent shapes.*W_dec \(24, 2, 16\)"):
        load_sae(folder)
    write_clt(folder, n_layers=2, d_model=16)
    save_file(
        {"W_dec_1": torch.zeros(24, 1, 16), "W_skip": torch.zeros(16, 16)},
        str(folder / "W_dec_1.safetensors"),
    )
    with pytest.raises(LoadingError, match="W_skip"):
        load_sae(folder)
    for path in folder.glob("*.safetensors"):
        path.unlink()
    with pytest.raises(LoadingError, match="no W_enc_L"):
        load_sae(folder)


def test_a_clt_for_more_layers_than_the_model_is_refused(tmp_path: Path, model: Any) -> None:
    folder = tmp_path / "clt"
    write_clt(folder, n_layers=N_LAYERS + 1, d_model=model.cfg.d_model)
    with pytest.raises(Exception, match=r"blocks\.3\.ln2\.hook_normalized"):
        Lens.load(model, folder, dtype=F64)


def test_dashboard_logit_effect_is_the_total_write_through_the_unembedding(setup: Any) -> None:
    """A CLT feature's direct logit effect sums its writes into every layer (all of them are added
    to the residual stream): `((sum_k W_{l->k}[i] - mean) * ln_final.w) @ W_U`."""
    from feature_lens.dashboard.data import logit_effects

    _, _, weights, lens, _ = setup
    model = lens.model
    node = Node("feature", OUT.format(0), None, 3)
    effect = logit_effects(lens, [node], k=5)[node]
    total = sum(clt_write(weights, 0, k)[3] for k in range(N_LAYERS))
    assert isinstance(total, torch.Tensor)
    expected = ((total - total.mean()) * model.ln_final.w.detach()) @ model.W_U.detach()
    top = torch.topk(expected, 5)
    assert [v for _, v in effect.top] == pytest.approx(top.values.tolist(), rel=1e-5)
    own_only = clt_write(weights, 0, 0)[3]
    own = ((own_only - own_only.mean()) * model.ln_final.w.detach()) @ model.W_U.detach()
    assert float((own - expected).abs().max()) > 1e-3


def test_dashboard_cache_key_covers_every_clt_weight(setup: Any) -> None:
    """A corpus pass cached for one CLT is not reused for a CLT differing in one encoder weight."""
    from feature_lens.dashboard.cache import corpus_pass_key

    _, _, _, lens, state = setup
    clt = lens.dictionary(OUT.format(1)).clt  # type: ignore[attr-defined]
    before = corpus_pass_key(lens, state.tokens, {"what": "test"})
    original = float(clt.W_enc[1][0, 0])
    try:
        clt.W_enc[1][0, 0] += 1.0
        after = corpus_pass_key(lens, state.tokens, {"what": "test"})
    finally:
        clt.W_enc[1][0, 0] = original
    assert before != after
    assert corpus_pass_key(lens, state.tokens, {"what": "test"}) == before


def _replacement_hooks(
    lens: Lens, weights: Weights, state: PromptState, node: Node, eps: float
) -> list[tuple[str, Any]]:
    """Raw hooks of the detached splice: every layer's output is the CLT's reconstruction from
    features recomputed from the current inputs plus the clean error term (a constant), with
    `node` nudged toward its baseline by `eps`."""
    errors = [state.clean.errors[OUT.format(k)] for k in range(N_LAYERS)]
    seen: dict[int, torch.Tensor] = {}
    moves = dict(_write_hooks(weights, state, node, eps))  # the nudge, per output hook

    def reconstruct(act: torch.Tensor, hook: Any) -> torch.Tensor:
        layer = hook.layer()
        feats = [clt_encode(weights, lay, seen[lay]) for lay in range(layer + 1)]
        out = clt_reconstruct(weights, layer, feats) + errors[layer]
        move = moves.get(hook.name)
        return out if move is None else move(out, hook)

    hooks: list[tuple[str, Any]] = []
    for layer in range(N_LAYERS):
        hooks.append((IN(lens, layer), lambda a, hook: seen.__setitem__(hook.layer(), a)))
        hooks.append((OUT.format(layer), reconstruct))
    return hooks


def test_detached_gradients_flow_through_the_clt_reconstructions(setup: Any) -> None:
    """With gradient_mode="detached" (SAE-Lens's splice) every layer's output is the CLT's
    reconstruction from features recomputed downstream plus a constant error term: the gradient
    score equals the finite difference of that model, written with raw hooks."""
    _, folder, weights, lens, state = setup
    detached = Lens.load(lens.model, folder, dtype=F64, gradient_mode="detached")
    chosen = [n for n in _some_nodes(lens, state) if n.site == OUT.format(0)]
    scores = gradient_node_effects(detached, state, METRIC, chosen)
    model = lens.model
    clean = _metric(model, state.tokens, [])
    assert _metric(
        model, state.tokens, _replacement_hooks(lens, weights, state, chosen[0], 0.0)
    ) == pytest.approx(clean, abs=1e-10)
    eps = 1e-6
    straight = gradient_node_effects(lens, state, METRIC, chosen)
    differs = 0.0
    for node in chosen:
        nudged = _metric(model, state.tokens, _replacement_hooks(lens, weights, state, node, eps))
        assert scores[node] == pytest.approx((clean - nudged) / eps, rel=1e-4, abs=1e-8), node
        differs = max(differs, abs(scores[node] - straight[node]))
    assert differs > 1e-6


def test_all_position_nodes_sum_their_positions(setup: Any) -> None:
    """A CLT feature node over all positions scores the sum of its per-position scores (every
    method that scores by gradients, and exact patching of a linear metric's direct path)."""
    _, _, _, lens, state = setup
    per_pos = [n for n in candidate_nodes(lens, state, "keep") if n.kind == "feature"]
    node = per_pos[0]
    members = [n for n in per_pos if n.site == node.site and n.index == node.index]
    summed = Node("feature", node.site, None, node.index)
    for method in (gradient_node_effects, direct_node_effects):
        scores = method(lens, state, METRIC, [summed, *members])
        assert scores[summed] == pytest.approx(sum(scores[m] for m in members), abs=1e-10)


def test_detached_edges_equal_finite_differences_of_the_replacement_model(setup: Any) -> None:
    """Detached edges from layer-1 nodes into layer-2 features (a block-local pass that starts
    after layer 0's encoder) = the finite difference of the gated target in the hand-written
    detached model."""
    _, folder, weights, lens, state = setup
    detached = Lens.load(lens.model, folder, dtype=F64, gradient_mode="detached")
    nodes = candidate_nodes(lens, state, "keep")
    upstream = [n for n in _some_nodes(lens, state) if n.site == OUT.format(1)]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == OUT.format(2)][:4]
    edges = gradient_edges(detached, state, upstream, downstream)
    _, clean = lens.model.run_with_cache(state.tokens)
    x_clean = clean[IN(lens, 2)]
    gate = (clt_encode(weights, 2, x_clean) != 0).to(F64)
    captured: dict[str, torch.Tensor] = {}
    grab = (IN(lens, 2), lambda act, hook: captured.__setitem__("x", act))
    eps, largest = 1e-6, 0.0
    for u in upstream:
        _metric(lens.model, state.tokens, [*_replacement_hooks(lens, weights, state, u, eps), grab])
        change = (
            _target_value(weights, 2, x_clean, gate)
            - _target_value(weights, 2, captured["x"], gate)
        ) / eps
        for d in downstream:
            assert d.pos is not None
            assert d.index is not None
            expected = float(change[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, rel=1e-4, abs=1e-8), (u, d)
            largest = max(largest, abs(expected))
    assert largest > 1e-4


def test_a_clt_attached_without_all_its_layers_is_refused(setup: Any) -> None:
    from feature_lens.errors import IncompatibleDictionaryError

    _, folder, _, lens, _ = setup
    sites = load_sae(folder, dtype=F64)
    with pytest.raises(IncompatibleDictionaryError, match=r"without layers \[0\]"):
        Lens(lens.model, sites[1:])


@pytest.mark.parametrize(("mode", "value"), [("scale", 3.0), ("zero", 0.0)])
def test_explorer_interventions_move_every_later_layer(setup: Any, mode: str, value: float) -> None:
    """The explorer's intervention on a layer-0 CLT feature equals raw hooks that add
    `(g - f) W_{0->k}[i]` to every layer k's output, f encoded by hand from the hooked run (the
    greedy continuation re-encodes at every step)."""
    from feature_lens.serve.intervene import InterventionRequest, Target, intervene

    _, _, weights, lens, state = setup
    model = lens.model
    tokens = state.tokens
    acts = state.clean.features[OUT.format(0)][0]
    pos, index = 3, int(acts[3].argmax())
    assert float(acts[pos, index]) > 0
    request = InterventionRequest(
        targets=[Target(site=OUT.format(0), index=index, pos=pos)],
        mode=mode,  # type: ignore[arg-type]
        value=value,
        max_new_tokens=3,
    )
    result = intervene(lens, tokens, request)

    seen: dict[str, torch.Tensor] = {}

    def move(act: torch.Tensor, hook: Any) -> torch.Tensor:
        f = clt_encode(weights, 0, seen["x"])[:, pos, index]
        g = f * value if mode == "scale" else torch.zeros_like(f)
        act = act.clone()
        act[:, pos] += (g - f)[:, None] * clt_write(weights, 0, hook.layer())[index]
        return act

    hooks: list[tuple[str, Any]] = [(IN(lens, 0), lambda a, hook: seen.__setitem__("x", a))]
    hooks += [(OUT.format(k), move) for k in range(N_LAYERS)]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1]
        current = tokens
        for _ in range(3):
            nxt = model.run_with_hooks(current, fwd_hooks=hooks)[0, -1].argmax()
            current = torch.cat([current, nxt.view(1, 1)], 1)
    torch.testing.assert_close(result.new_logits.to(F64), logits, atol=1e-5, rtol=1e-5)
    assert float((result.new_logits - result.clean_logits).abs().max()) > 1e-3
    ids = model.to_tokens(" ".join(result.new_continuation), prepend_bos=False)[0].tolist()
    assert ids == current[0, tokens.shape[1] :].tolist()


def test_faithfulness_ablates_every_layer_a_feature_writes(setup: Any) -> None:
    """Circuit faithfulness with corrupted ablation: with nothing kept every layer's output is the
    corrupted run's; keeping one layer-0 feature adds back `(a - b) W_{0->k}[i]` at every layer
    k (raw hooks on the corrupted run's MLP outputs)."""
    from feature_lens.attribution import faithfulness

    _, _, weights, lens, state = setup
    model = lens.model
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    _, corrupt = model.run_with_cache(prompts.corrupted)
    feature = next(n for n in _some_nodes(lens, state) if n.kind == "feature")
    assert feature.site == OUT.format(0)
    assert feature.pos is not None
    assert feature.index is not None
    delta = float(state.delta(feature)[feature.pos])
    assert abs(delta) > 1e-3

    def held(keep: bool) -> list[tuple[str, Any]]:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            out = corrupt[hook.name].clone()
            if keep:
                out[0, feature.pos] += delta * clt_write(weights, 0, hook.layer())[feature.index]
            return out

        return [(OUT.format(k), hook) for k in range(N_LAYERS)]

    result = faithfulness(lens, prompts, METRIC, [feature])
    assert result.empty == pytest.approx(_metric(model, state.tokens, held(False)), abs=1e-10)
    assert result.circuit == pytest.approx(_metric(model, state.tokens, held(True)), abs=1e-10)
    assert abs(result.circuit - result.empty) > 1e-4


def test_sparse_reconstruction_path_with_few_live_features(setup: Any) -> None:
    """With most features dead the reconstruction runs through the live ones only: errors still
    equal circuit-tracer's formula and detached gradients the finite difference."""
    _, folder, weights, lens, state = setup
    sparse_weights = [{**w, "b_enc": w["b_enc"].clone()} for w in weights]
    for w in sparse_weights:
        w["b_enc"][4:] -= 50.0
    detached = Lens.load(lens.model, folder, dtype=F64, gradient_mode="detached")
    clt = detached.dictionary(OUT.format(0)).clt  # type: ignore[attr-defined]
    clt.b_enc[:, 4:] -= 50.0
    with torch.no_grad():
        run = detached.run(state.tokens)
        _, cache = lens.model.run_with_cache(state.tokens)
    features = _features(lens, sparse_weights, cache)
    live = sum(int((f != 0).reshape(-1, f.shape[-1]).any(0).sum()) for f in features)
    assert 0 < live <= 4 * N_LAYERS
    for layer in range(N_LAYERS):
        site = OUT.format(layer)
        expected = cache[site] - clt_reconstruct(sparse_weights, layer, features)
        torch.testing.assert_close(run.errors[site], expected, atol=1e-12, rtol=0)
    sparse_state = make_state(detached, PromptSet.build(detached, CLEAN, CORRUPT, answers=[[5, 9]]))
    chosen = [n for n in _some_nodes(detached, sparse_state) if n.site == OUT.format(0)]
    assert any(n.kind == "feature" for n in chosen)
    scores = gradient_node_effects(detached, sparse_state, METRIC, chosen)
    clean = _metric(lens.model, sparse_state.tokens, [])
    eps = 1e-6
    for node in chosen:
        hooks = _replacement_hooks(lens, sparse_weights, sparse_state, node, eps)
        fd = (clean - _metric(lens.model, sparse_state.tokens, hooks)) / eps
        assert scores[node] == pytest.approx(fd, rel=1e-4, abs=1e-8), node


def test_negative_jumprelu_thresholds_follow_circuit_tracer(tmp_path: Path) -> None:
    """circuit-tracer's JumpReLU is `pre * (pre > threshold)` with no ReLU first: with a negative
    threshold, small negative pre-activations pass (SAE-Lens's JumpReLU would zero them)."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "clt"
    weights = write_clt(folder, n_layers=2, d_model=16, jumprelu=True)
    encoder = load_file(str(folder / "W_enc_0.safetensors"))
    encoder["threshold_0"] = encoder["threshold_0"] - 0.5
    save_file(encoder, str(folder / "W_enc_0.safetensors"))
    weights[0]["threshold"] = encoder["threshold_0"]
    site = load_sae(folder)[0]
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    f = site.encode(x)
    torch.testing.assert_close(f, clt_encode(weights, 0, x), atol=1e-6, rtol=0)
    assert bool((f < 0).any())
