"""Every supported architecture, from a local Hugging Face folder with random weights: it loads
through feature-lens with the Hugging Face model's log-probs, the splice is an identity, and each
method (exact, attribution, integrated gradients, direct) equals an independent computation written
with raw TransformerLens hooks (the helpers of tests/attribution)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens, load_model
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    PromptState,
    candidate_nodes,
    direct_edges,
    exact_node_effects,
    gradient_node_effects,
    integrated_gradient_node_effects,
)
from tests.attribution.conftest import CLEAN, CORRUPT, F64, make_state, splice_reference_hooks
from tests.attribution.test_methods import _frozen_hooks, _metric_with_hooks
from tests.conftest import WORDS, make_sae, make_tokenizer

METRIC = LogitDiff(correct=5, wrong=9)


def _ids(text: str) -> torch.Tensor:
    """The word-level test tokenizer's ids, BOS (0) first, without a tokenizer: Qwen2 folders
    make `AutoTokenizer` pick Qwen2's own tokenizer class, which cannot read a word-level vocab."""
    return torch.tensor([[0, *(int(w[1:]) + 2 for w in text.split())]])


CLEAN_IDS, CORRUPT_IDS = _ids(CLEAN), _ids(CORRUPT)
VOCAB = len(WORDS) + 2
TARGET = "blocks.1.hook_resid_post"


def _hf_model(architecture: str) -> Any:
    """A tiny random `transformers` model of `architecture` (2 layers, width 16, vocab 42)."""
    import transformers as tf

    common: dict[str, Any] = {"vocab_size": VOCAB, "initializer_range": 0.2}
    llama_like: dict[str, Any] = {
        **common,
        "num_hidden_layers": 2,
        "hidden_size": 16,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 16,
    }
    torch.manual_seed(0)
    if architecture == "gpt2":
        config: Any = tf.GPT2Config(
            **common, n_layer=2, n_embd=16, n_head=4, n_positions=16, bos_token_id=0
        )
        return tf.GPT2LMHeadModel(config)
    if architecture == "gpt_neox":
        config = tf.GPTNeoXConfig(
            **{**llama_like, "num_key_value_heads": 4}, rotary_pct=0.5, bos_token_id=0
        )
        return tf.GPTNeoXForCausalLM(config)
    if architecture == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**llama_like, bos_token_id=0))
    if architecture == "gemma2":
        config = tf.Gemma2Config(
            **llama_like, head_dim=4, sliding_window=4, query_pre_attn_scalar=8, bos_token_id=0
        )
        return tf.Gemma2ForCausalLM(config)
    if architecture == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**llama_like, bos_token_id=0))
    raise ValueError(architecture)


ARCHITECTURES = {
    "gpt2": "GPT2LMHeadModel",
    "gpt_neox": "GPTNeoXForCausalLM",
    "llama": "LlamaForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


def save_folder(architecture: str, folder: Path, *, tokenizer: bool = True) -> Any:
    """Save a tiny random model (and the word-level test tokenizer) with `save_pretrained`; return
    the Hugging Face model in float64 for reference."""
    hf_model = _hf_model(architecture).eval()
    hf_model.save_pretrained(folder)
    if tokenizer:
        make_tokenizer(folder)
    return hf_model.to(F64)


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    architecture: str = request.param
    # "llama" and "gemma" in every path: the architecture must come from config.json.
    folder = tmp_path_factory.mktemp("llama-gemma-paths") / f"tiny-{architecture}"
    hf_model = save_folder(architecture, folder)
    model = load_model(folder, dtype=F64)
    d = model.cfg.d_model
    saes = [
        make_sae("standard", d, "blocks.0.hook_resid_post", seed=3, dtype=F64),
        make_sae(
            "transcoder",
            d,
            "blocks.0.ln2.hook_normalized",
            seed=2,
            dtype=F64,
            hook_name_out="blocks.0.hook_mlp_out",
        ),
        make_sae("topk", d, "blocks.1.hook_attn_out", seed=1, dtype=F64),
        make_sae("standard", d, TARGET, seed=4, dtype=F64),
    ]
    lens = Lens(model, saes, check_model_name=False)
    prompts = PromptSet.build(lens, CLEAN_IDS, CORRUPT_IDS, answers=[[5, 9]])
    return architecture, folder, hf_model, model, lens, make_state(lens, prompts)


def test_loads_from_config_with_the_hugging_face_log_probs(setup: Any) -> None:
    architecture, folder, hf_model, model, _, _ = setup
    assert model.cfg.original_architecture == ARCHITECTURES[architecture]
    assert model.cfg.model_name == f"tiny-{architecture}"
    tokens = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = hf_model(tokens).logits
        ours = model(tokens)
        raw = load_model(
            folder,
            dtype=F64,
            processing={
                "fold_ln": False,
                "center_writing_weights": False,
                "center_unembed": False,
                "fold_value_biases": False,
            },
        )(tokens)
    # Weight processing keeps log-probs; without it the logits themselves are the model's.
    torch.testing.assert_close(
        torch.log_softmax(ours, -1), torch.log_softmax(reference, -1), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(raw, reference, atol=1e-6, rtol=0)
    assert reference.std() > 0.05  # the random model is not trivially uniform
    if architecture != "qwen2":  # the folder's own tokenizer (see _ids)
        assert torch.equal(model.to_tokens(CLEAN, prepend_bos=True), CLEAN_IDS)


def test_splice_is_an_identity(setup: Any) -> None:
    _, _, _, model, lens, state = setup
    with torch.no_grad():
        torch.testing.assert_close(
            lens.run(state.tokens).logits, model(state.tokens), atol=1e-10, rtol=0
        )
        assert all(f.abs().sum() > 0 for f in lens.run(state.tokens).features.values())


def _patch_edit(node: Node, state: PromptState) -> Any:
    base_f, base_e = state.base.features[node.site], state.base.errors[node.site]

    def edit(f: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if node.kind == "feature":
            f[0, node.pos, node.index] = base_f[0, node.pos, node.index]
        else:
            e[0, node.pos] = base_e[0, node.pos]
        return f, e

    return edit


def _chosen(lens: Lens, state: PromptState) -> list[Node]:
    nodes = candidate_nodes(lens, state, "keep")
    picked: list[Node] = []
    for site in lens.sites:
        picked += [n for n in nodes if n.site == site and n.kind == "feature"][:2]
    return picked + [n for n in nodes if n.kind == "error"][:2]


def test_exact_equals_hand_written_patches(setup: Any) -> None:
    _, _, _, model, lens, state = setup
    chosen = _chosen(lens, state)
    effects = exact_node_effects(lens, state, METRIC, chosen)
    clean = _metric_with_hooks(model, state.tokens, [])
    for node in chosen:
        hooks = splice_reference_hooks(lens, node.site, _patch_edit(node, state), {})
        assert effects[node] == pytest.approx(
            clean - _metric_with_hooks(model, state.tokens, hooks), abs=1e-10
        )
    assert max(abs(v) for v in effects.values()) > 1e-4


def test_attribution_equals_finite_differences(setup: Any) -> None:
    """Straight-through attribution patching = d metric / d node x (clean - baseline), measured by
    nudging the node by eps x delta in the plain model with hand-written hooks."""
    _, _, _, model, lens, state = setup
    chosen = [
        n for n in _chosen(lens, state) if n.kind == "feature" and abs(state.delta(n)[n.pos]) > 1e-6
    ]
    scores = gradient_node_effects(lens, state, METRIC, chosen)
    clean = _metric_with_hooks(model, state.tokens, [])
    eps = 1e-6
    for node in chosen:
        delta = state.delta(node)[node.pos]

        def nudge(f: torch.Tensor, e: torch.Tensor, node: Node = node, delta: Any = delta) -> Any:
            f[0, node.pos, node.index] -= eps * delta
            return f, e

        hooks = splice_reference_hooks(lens, node.site, nudge, {})
        fd = (clean - _metric_with_hooks(model, state.tokens, hooks)) / eps
        assert scores[node] == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert len(chosen) >= 3


def test_integrated_gradients_add_up_to_the_site_patch(setup: Any) -> None:
    """Completeness: IG scores of every node of a site sum to the effect of patching the site's
    output to the corrupted run's (by hooks), closer with more steps."""
    _, _, _, model, lens, state = setup
    site = "blocks.0.hook_resid_post"
    nodes = [n for n in candidate_nodes(lens, state, "keep") if n.site == site]
    _, corrupt_cache = model.run_with_cache(CORRUPT_IDS)
    exact = _metric_with_hooks(model, state.tokens, []) - _metric_with_hooks(
        model, state.tokens, [(site, lambda act, hook: corrupt_cache[site])]
    )
    errors = []
    for steps in (1, 32):
        scores = integrated_gradient_node_effects(lens, state, METRIC, nodes, steps=steps)
        errors.append(abs(sum(scores.values()) - exact))
    assert errors[1] < 1e-3 * max(1.0, abs(exact))
    assert errors[1] <= errors[0]


def test_direct_edges_equal_frozen_interventions(setup: Any) -> None:
    """Direct attribution = the change in the target's pre-activation (times its clean gate) when
    the source is patched in the model with norm scales, attention patterns and MLPs frozen."""
    _, _, _, model, lens, state = setup
    nodes = candidate_nodes(lens, state, "keep")
    upstream = [
        n
        for n in nodes
        if n.site in ("blocks.0.hook_resid_post", "blocks.0.hook_mlp_out", "blocks.1.hook_attn_out")
        and n.kind in ("feature", "error")
    ][:12]
    downstream = [n for n in nodes if n.kind == "feature" and n.site == TARGET][:3]
    edges = direct_edges(lens, state, upstream, downstream, mlp="stop")
    _, clean_cache = model.run_with_cache(state.tokens)
    sae = lens.dictionary(TARGET).sae
    shift = sae.b_dec if sae.cfg.apply_b_dec_to_input else 0.0

    def pre(x: torch.Tensor) -> torch.Tensor:  # a standard SAE's pre-activation, by hand
        with torch.no_grad():
            return (x - shift) @ sae.W_enc + sae.b_enc

    pre_clean = pre(clean_cache[TARGET])
    torch.testing.assert_close(torch.relu(pre_clean), sae.encode(clean_cache[TARGET]).detach())
    gate = (pre_clean > 0).to(F64)
    frozen = _frozen_hooks(model, clean_cache, "stop")
    captured: dict[str, torch.Tensor] = {}
    grab = (TARGET, lambda act, hook: captured.__setitem__("x", act) or act)
    largest = 0.0
    for u in upstream:
        hooks = splice_reference_hooks(lens, u.site, _patch_edit(u, state), {})
        with torch.no_grad():
            model.run_with_hooks(state.tokens, fwd_hooks=[*frozen, *hooks, grab])
        change = pre_clean - pre(captured["x"])
        for d in downstream:
            expected = float((gate * change)[0, d.pos, d.index])
            assert edges[(u, d)] == pytest.approx(expected, abs=1e-10)
            largest = max(largest, abs(expected))
    assert largest > 1e-4
