"""The Lens splice: identity on logits, features equal to the SAEs' own encodings, and the two
gradient modes checked against independent computations."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import InputError, Lens
from feature_lens.lens import EMBED_SITE, RunPlan
from tests.conftest import full_dictionaries, make_model

PROMPT = "w1 w5 w3 w9 w2 w7 w4"


@pytest.fixture(scope="module")
def lens(model: Any) -> Lens:
    return Lens(model, full_dictionaries(model))


def test_sites_are_in_forward_order(lens: Lens) -> None:
    assert lens.sites == [
        "blocks.0.hook_attn_out",
        "blocks.0.hook_mlp_out",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_attn_out",
        "blocks.1.hook_resid_mid",
        "blocks.1.hook_resid_post",
    ]
    assert lens.dictionary("blocks.0.hook_mlp_out").hook_in == "blocks.0.ln2.hook_normalized"
    assert [lens.site_layer(s) for s in lens.sites] == [0, 0, 0, 1, 1, 1]


def test_construction_runs_one_forward_and_attach_none(
    model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook order and activation widths come from one dry run; `attach` reuses them."""
    calls: list[int] = []
    forward = model.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return forward(*args, **kwargs)

    dictionaries = full_dictionaries(model)
    monkeypatch.setattr(model, "forward", counted)
    lens = Lens(model, dictionaries)
    assert len(calls) == 1
    smaller = Lens(model, dictionaries[:2])
    assert len(calls) == 2
    grown = smaller.attach(*dictionaries[2:])
    assert len(calls) == 2
    assert grown.sites == lens.sites
    assert smaller.sites == lens.sites[:2]
    assert [grown.site_order(s) for s in grown.sites] == [lens.site_order(s) for s in lens.sites]
    monkeypatch.undo()
    torch.testing.assert_close(
        grown.run(PROMPT).logits, model(lens.to_tokens(PROMPT)), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("mode", ["straight_through", "detached"])
def test_splice_keeps_logits(model: Any, mode: str) -> None:
    lens = Lens(model, full_dictionaries(model), gradient_mode=mode)  # type: ignore[arg-type]
    tokens = lens.to_tokens(PROMPT)
    with torch.no_grad():
        plain = model(tokens)
        spliced = lens.run(tokens).logits
        without_error = lens.forward(tokens, RunPlan(error_term=False)).logits
    assert (spliced - plain).abs().max() <= 1e-4
    # The SAEs are random, so without the error term the output must change a lot: the identity
    # above is the error term's doing, not a splice that does nothing.
    assert (without_error - plain).abs().max() > 1e-2


def test_features_and_errors_match_the_saes_on_cached_activations(lens: Lens, model: Any) -> None:
    tokens = lens.to_tokens(PROMPT)
    run = lens.run(tokens)
    _, cache = model.run_with_cache(tokens)
    for site, dictionary in lens.dictionaries.items():
        x_in, x_out = cache[dictionary.hook_in], cache[dictionary.hook_out]
        expected = dictionary.sae.encode(x_in)
        torch.testing.assert_close(run.features[site], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            run.errors[site], x_out - dictionary.sae.decode(expected), atol=1e-5, rtol=0
        )
        assert (run.features[site] > 0).any()


def _plain_gradient(model: Any, tokens: torch.Tensor, hook: str) -> torch.Tensor:
    """d(sum of last-position logit 3)/d(activation at hook) in the model without any SAE."""
    leaf: dict[str, torch.Tensor] = {}

    def add_leaf(act: torch.Tensor, hook: Any) -> torch.Tensor:
        leaf["x"] = torch.zeros_like(act, requires_grad=True)
        return act + leaf["x"]

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook, add_leaf)])
    (grad,) = torch.autograd.grad(logits[:, -1, 3].sum(), leaf["x"])
    return grad


def test_straight_through_gradients_equal_the_models_own(lens: Lens, model: Any) -> None:
    tokens = lens.to_tokens(PROMPT)
    result = lens.forward(tokens, RunPlan(leaf_sites=[*lens.sites, EMBED_SITE]))
    grads = torch.autograd.grad(
        result.logits[:, -1, 3].sum(), [result.leaves[s] for s in [*lens.sites, EMBED_SITE]]
    )
    for site, grad in zip([*lens.sites, "blocks.0.hook_resid_pre"], grads, strict=True):
        torch.testing.assert_close(grad, _plain_gradient(model, tokens, site), atol=1e-5, rtol=0)


def test_detached_gradients_equal_sae_lens_error_term_splice(model: Any) -> None:
    """SAE-Lens's own splice (`use_error_term=True`: error computed under no_grad) is the
    reference for the detached mode."""
    dictionaries = full_dictionaries(model)
    lens = Lens(model, dictionaries, gradient_mode="detached")
    tokens = lens.to_tokens(PROMPT)
    result = lens.forward(tokens, RunPlan(leaf_sites=[EMBED_SITE]))
    (ours,) = torch.autograd.grad(result.logits[:, -1, 3].sum(), result.leaves[EMBED_SITE])

    hooks: list[tuple[str, Any]] = []
    inputs: dict[str, torch.Tensor] = {}
    for sae in dictionaries:
        hook_in = sae.cfg.metadata.hook_name
        hook_out = sae.cfg.metadata.get("hook_name_out") or hook_in
        sae.use_error_term = True
        if hook_in == hook_out:
            hooks.append((hook_out, lambda act, hook, sae=sae: sae(act)))
        else:  # transcoder: SAE-Lens's convention, error = true output - reconstruction, detached
            hooks.append((hook_in, lambda act, hook: inputs.__setitem__("x", act) or act))

            def transcode(act: torch.Tensor, hook: Any, sae: Any = sae) -> torch.Tensor:
                recon = sae.decode(sae.encode(inputs["x"]))
                return recon + (act - recon).detach()

            hooks.append((hook_out, transcode))
    leaf: dict[str, torch.Tensor] = {}

    def add_leaf(act: torch.Tensor, hook: Any) -> torch.Tensor:
        leaf["x"] = torch.zeros_like(act, requires_grad=True)
        return act + leaf["x"]

    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pre", add_leaf), *hooks])
    (reference,) = torch.autograd.grad(logits[:, -1, 3].sum(), leaf["x"])
    for sae in dictionaries:
        sae.use_error_term = False
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    plain = _plain_gradient(model, tokens, "blocks.0.hook_resid_pre")
    assert (ours - plain).abs().max() > 1e-3  # the two modes really differ


def test_splice_can_be_turned_off(lens: Lens, model: Any) -> None:
    run = lens.run(PROMPT, splice=False)
    assert run.features == {}
    torch.testing.assert_close(run.logits, model(lens.to_tokens(PROMPT)), atol=0, rtol=0)


def test_prompt_errors(lens: Lens) -> None:
    with pytest.raises(InputError, match="prompt 1 is empty"):
        lens.to_tokens(["w1", "  "])
    with pytest.raises(InputError, match="context is 12 tokens"):
        lens.to_tokens(" ".join(["w1"] * 20))
    with pytest.raises(InputError, match="different lengths"):
        lens.to_tokens(["w1 w2", "w1 w2 w3"])
    with pytest.raises(InputError, match="outside the vocabulary"):
        lens.to_tokens(torch.tensor([[0, 1, 99]]))
    with pytest.raises(InputError, match="empty prompt"):
        lens.to_tokens(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(InputError, match="no prompts"):
        lens.to_tokens([])
    with pytest.raises(InputError, match="no dictionary at site"):
        lens.dictionary("blocks.0.hook_resid_pree")


def test_gradient_mode_is_checked(tokenizer: Any) -> None:
    with pytest.raises(InputError, match="gradient_mode"):
        Lens(make_model(tokenizer), [], gradient_mode="sideways")  # type: ignore[arg-type]


def test_topk_decoder_norm_rescaling_is_the_effective_decoder(model: Any) -> None:
    """SAE-Lens top-k SAEs may decode with f_i / |W_dec[i]|; patching must use those rows."""
    import sae_lens

    from feature_lens.lens import Dictionary

    sae = sae_lens.TopKSAE(
        sae_lens.TopKSAEConfig(d_in=16, d_sae=32, k=4, rescale_acts_by_decoder_norm=True)
    )
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 3.0, 32)[:, None])  # rows far from unit norm
    sae.cfg.metadata.hook_name = "blocks.0.hook_resid_post"
    dictionary = Dictionary(sae)
    f = torch.zeros(1, 32)
    f[0, 7] = 2.0
    torch.testing.assert_close(
        dictionary.decode(f) - dictionary.decode(torch.zeros(1, 32)), 2.0 * dictionary.W_dec[7:8]
    )
    Lens(model, [sae])  # passes the affine check with the effective decoder
