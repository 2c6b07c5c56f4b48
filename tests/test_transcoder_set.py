"""circuit-tracer transcoder sets (config.yaml + layer_L.safetensors) load as per-layer
transcoders, skip transcoders included, and every method on them equals an independent
computation written with raw TransformerLens hooks and circuit-tracer's formulas by hand."""

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
    exact_node_effects,
    gradient_node_effects,
)
from feature_lens.errors import LoadingError
from feature_lens.lens import Dictionary
from tests.attribution.conftest import CLEAN, CORRUPT, make_state
from tests.circuit_tracer_format import (
    KINDS,
    ct_encode,
    ct_pre,
    ct_reconstruct,
    ct_skip,
    write_transcoder_set,
)
from tests.conftest import make_model

F64 = torch.float64
METRIC = LogitDiff(correct=5, wrong=9)


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    return make_model(tokenizer, dtype=F64, seed=7)


@pytest.fixture(scope="module", params=KINDS)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, model: Any):
    kind: str = request.param
    folder = tmp_path_factory.mktemp("ct") / kind
    weights = write_transcoder_set(
        folder, n_layers=2, d_model=model.cfg.d_model, kind=kind, seed=KINDS.index(kind)
    )
    weights = [{k: v.to(F64) for k, v in w.items()} for w in weights]
    lens = Lens.load(model, folder, dtype=F64)
    prompts = PromptSet.build(lens, CLEAN, CORRUPT, answers=[[5, 9]])
    return kind, folder, weights, lens, make_state(lens, prompts)


def test_loads_every_layer_with_circuit_tracer_semantics(setup: Any) -> None:
    kind, folder, weights, _, _ = setup
    loaded = load_sae(folder, dtype=F64)
    assert isinstance(loaded, list)
    assert len(loaded) == 2
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(0), dtype=F64)
    for layer, (sae, w) in enumerate(zip(loaded, weights, strict=True)):
        dictionary = Dictionary(sae)
        assert dictionary.hook_in == f"blocks.{layer}.ln2.hook_normalized"
        assert dictionary.hook_out == f"blocks.{layer}.hook_mlp_out"
        assert dictionary.model_name == "tiny-test-model"
        assert dictionary.has_skip == ("skip" in kind)
        f = dictionary.encode(x)
        torch.testing.assert_close(f, ct_encode(w, x), atol=1e-12, rtol=0)
        assert 0 < int((f > 0).sum()) < f.numel()
        torch.testing.assert_close(
            dictionary.reconstruct(x, f), ct_reconstruct(w, x, f), atol=1e-12, rtol=0
        )


def test_splice_is_an_identity_and_errors_are_circuit_tracers(setup: Any) -> None:
    _, _, weights, lens, state = setup
    model = lens.model
    with torch.no_grad():
        run = lens.run(state.tokens)
        logits, cache = model.run_with_cache(state.tokens)
    torch.testing.assert_close(run.logits, logits, atol=1e-12, rtol=0)
    for layer, w in enumerate(weights):
        x_in = cache[f"blocks.{layer}.ln2.hook_normalized"]
        f = ct_encode(w, x_in)
        expected_error = cache[f"blocks.{layer}.hook_mlp_out"] - ct_reconstruct(w, x_in, f)
        site = f"blocks.{layer}.hook_mlp_out"
        torch.testing.assert_close(run.features[site], f, atol=1e-12, rtol=0)
        torch.testing.assert_close(run.errors[site], expected_error, atol=1e-12, rtol=0)


def _metric(model: Any, tokens: torch.Tensor, hooks: list[tuple[str, Any]]) -> float:
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
    return float(logits[0, -1, 5] - logits[0, -1, 9])


def _write_hook(lens: Lens, state: PromptState, node: Node, scale: float = 1.0) -> Any:
    """A raw hook that moves `node` from its clean value to its baseline (times `scale`) by adding
    the difference of what it writes: `(b - a) W_dec[i]` for a feature, `err_b - err` for an
    error, `emb_b - emb` for a token, at its position."""
    if node.kind == "feature":
        assert node.index is not None
        w_dec = lens.dictionary(node.site).sae.W_dec[node.index].detach()
        change = -float(state.delta(node)[node.pos]) * w_dec
        hook_name = node.site
    else:
        change = -state.delta(node)[node.pos]
        hook_name = node.site if node.kind == "error" else "blocks.0.hook_resid_pre"

    def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
        act = act.clone()
        act[0, node.pos] += scale * change
        return act

    return hook_name, hook


def _some_nodes(lens: Lens, state: PromptState) -> list[Node]:
    nodes = candidate_nodes(lens, state, "keep")
    picked: list[Node] = []
    for site in lens.sites:
        picked += [n for n in nodes if n.site == site and n.kind == "feature"][:3]
        picked += [n for n in nodes if n.site == site and n.kind == "error"][:2]
    return picked


def test_exact_and_attribution_patching_equal_hand_written_patches(setup: Any) -> None:
    _, _, _, lens, state = setup
    chosen = _some_nodes(lens, state)
    exact = exact_node_effects(lens, state, METRIC, chosen)
    gradient = gradient_node_effects(lens, state, METRIC, chosen)
    clean = _metric(lens.model, state.tokens, [])
    eps = 1e-6
    for node in chosen:
        patched = _metric(lens.model, state.tokens, [_write_hook(lens, state, node)])
        assert exact[node] == pytest.approx(clean - patched, abs=1e-10)
        nudged = _metric(lens.model, state.tokens, [_write_hook(lens, state, node, eps)])
        assert gradient[node] == pytest.approx((clean - nudged) / eps, rel=1e-4, abs=1e-8)
    assert max(abs(v) for v in exact.values()) > 1e-4


def _frozen_with_skip(
    model: Any, clean: Any, weights: list[dict[str, torch.Tensor]], with_skip: bool
) -> list[tuple[str, Any]]:
    """circuit-tracer's local replacement model as raw hooks: LN scales and attention patterns
    at their clean values, each MLP's output held at its clean value plus (skip transcoders) the
    change of the skip term `x_in @ W_skip.T`."""
    hooks: list[tuple[str, Any]] = []
    for name in model.hook_dict:
        if name.endswith(("hook_scale", "attn.hook_pattern")):
            hooks.append((name, lambda act, hook: clean[hook.name]))
    for layer, w in enumerate(weights):
        seen: dict[str, torch.Tensor] = {}
        hooks.append(
            (
                f"blocks.{layer}.ln2.hook_normalized",
                lambda act, hook, seen=seen: seen.__setitem__("x", act) or act,
            )
        )
        clean_in = clean[f"blocks.{layer}.ln2.hook_normalized"]

        def hold(
            act: Any, hook: Any, w: Any = w, seen: Any = seen, clean_in: Any = clean_in
        ) -> Any:
            held = clean[hook.name]
            if with_skip:
                held = held + ct_skip(w, seen["x"]) - ct_skip(w, clean_in)
            return held

        hooks.append((f"blocks.{layer}.hook_mlp_out", hold))
    return hooks


def test_direct_edges_equal_interventions_in_the_local_replacement_model(setup: Any) -> None:
    """Direct edges into layer-1 features = the change in their (gated) pre-activation when a
    layer-0 feature, error or token is patched in the frozen model, the skip path included."""
    kind, _, weights, lens, state = setup
    model = lens.model
    nodes = candidate_nodes(lens, state, "keep")
    target_site = "blocks.1.hook_mlp_out"
    upstream = [n for n in _some_nodes(lens, state) if n.site == "blocks.0.hook_mlp_out"]
    upstream += [n for n in nodes if n.kind == "token"]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == target_site][:4]
    edges = direct_edges(lens, state, upstream, downstream, mlp="stop")
    _, clean = model.run_with_cache(state.tokens)
    w1 = weights[1]
    pre_clean = ct_pre(w1, clean["blocks.1.ln2.hook_normalized"])
    gate = (ct_encode(w1, clean["blocks.1.ln2.hook_normalized"]) != 0).to(F64)
    captured: dict[str, torch.Tensor] = {}
    grab = ("blocks.1.ln2.hook_normalized", lambda act, hook: captured.__setitem__("x", act))
    largest, skip_matters = 0.0, 0.0
    for u in upstream:
        changes = {}
        for with_skip in (True, False):
            frozen = _frozen_with_skip(model, clean, weights, with_skip)
            with torch.no_grad():
                model.run_with_hooks(
                    state.tokens, fwd_hooks=[*frozen, _write_hook(lens, state, u), grab]
                )
            changes[with_skip] = gate * (pre_clean - ct_pre(w1, captured["x"]))
        for d in downstream:
            expected = float(changes[True][0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-10), (u, d)
            largest = max(largest, abs(expected))
            skip_matters = max(
                skip_matters, abs(expected - float(changes[False][0, d.pos, d.index]))
            )
    assert largest > 1e-4
    # The skip path carries part of the token edges exactly when the transcoders have one.
    assert (skip_matters > 1e-4) == ("skip" in kind)


def test_bad_transcoder_sets_are_refused(tmp_path: Path, model: Any) -> None:
    folder = tmp_path / "set"
    write_transcoder_set(folder, n_layers=2, d_model=16)
    (folder / "layer_0.safetensors").unlink()
    with pytest.raises(LoadingError, match=r"no layer_0\.safetensors"):
        load_sae(folder)
    (folder / "config.yaml").write_text("model_kind: crosscoder\n")
    with pytest.raises(LoadingError, match="model_kind 'crosscoder'"):
        load_sae(folder)
    (folder / "config.yaml").write_text("model_kind: transcoder_set\n")
    with pytest.raises(LoadingError, match="feature_input_hook"):
        load_sae(folder)
    (folder / "config.yaml").write_text("{{not yaml")
    with pytest.raises(LoadingError, match=r"not valid YAML|not a circuit-tracer config"):
        load_sae(folder)


def test_cli_takes_a_transcoder_set_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--sae FOLDER` with a circuit-tracer set attaches every layer's transcoder; the config's
    `model_name` is checked against the model folder's name like an SAE-Lens cfg.json's."""
    from feature_lens.cli import main
    from feature_lens.graph import AttributionGraph
    from tests.test_loading import _save_gpt2_folder

    _save_gpt2_folder(tmp_path / "gpt2-tiny", tmp_path / "tok")
    sets = tmp_path / "ct"
    write_transcoder_set(sets, n_layers=2, d_model=32, kind="skip", model_name="gpt2-tiny")
    lens_args = [
        "--model", str(tmp_path / "gpt2-tiny"), "--sae", str(sets),
        "--no-fold-ln", "--no-center-writing-weights", "--no-center-unembed",
    ]  # fmt: skip
    assert main(["info", *lens_args]) == 0
    out = capsys.readouterr().out
    assert "blocks.0.hook_mlp_out" in out
    assert "blocks.1.hook_mlp_out" in out
    assert "SkipTranscoder" in out
    graph_file = tmp_path / "graph.json"
    args = [
        "attribute", *lens_args,
        "--prompt", "w1 w2 w3 w4 w5", "--corrupted", "w1 w2 w9 w4 w5",
        "--correct", "w6", "--wrong", "w7", "--method", "direct", "--out", str(graph_file),
    ]  # fmt: skip
    assert main(args) == 0
    graph = AttributionGraph.load(graph_file)
    assert {n.site for n in graph.nodes.values() if n.kind == "feature"} <= {
        "blocks.0.hook_mlp_out",
        "blocks.1.hook_mlp_out",
    }
    write_transcoder_set(sets, n_layers=2, d_model=32, kind="skip", model_name="gpt2-medium")
    assert main(["info", *lens_args]) == 1
    assert "gpt2-medium" in capsys.readouterr().err
