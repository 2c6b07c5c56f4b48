"""Interventions from the panel, checked against an independent implementation: plain
TransformerLens hooks that call the SAE-Lens objects' own `encode`/`decode` (not feature-lens's
splice), with attention patterns held by hooks on a cache of the clean run."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.serve.intervene import InterventionRequest, Target, intervene
from feature_lens.serve.store import Annotations

PROMPT = "w1 w5 w9 w2 w7 w3"


def reference_hooks(lens: Lens, targets: list[Target], mode: str, value: float) -> list[Any]:
    """TransformerLens hooks that rewrite `targets` with the SAE-Lens objects directly."""
    hooks: list[Any] = []
    by_site: dict[str, list[Target]] = {}
    for t in targets:
        by_site.setdefault(t.site, []).append(t)
    for site, items in by_site.items():
        sae = lens.dictionary(site).sae  # the SAE-Lens object
        hook_in = sae.cfg.metadata.hook_name
        hook_out = getattr(sae.cfg.metadata, "hook_name_out", None) or hook_in
        store: dict[str, torch.Tensor] = {}

        def capture(act: torch.Tensor, hook: Any, store: dict[str, torch.Tensor] = store) -> None:
            store["x"] = act

        def rewrite(
            act: torch.Tensor,
            hook: Any,
            sae: Any = sae,
            items: list[Target] = items,
            store: dict[str, torch.Tensor] = store,
            same: bool = hook_in == hook_out,
        ) -> torch.Tensor:
            x_in = act if same else store["x"]
            f = sae.encode(x_in)
            err = act - sae.decode(f)
            g = f.clone()
            for t in items:
                cols = (slice(None), slice(None) if t.pos is None else t.pos, t.index)
                if mode == "zero":
                    g[cols] = 0.0
                elif mode == "scale":
                    g[cols] = f[cols] * value
                else:
                    g[cols] = value
            return sae.decode(g) + err

        if hook_in != hook_out:
            hooks.append((hook_in, capture))
        hooks.append((hook_out, rewrite))
    return hooks


def reference_run(
    lens: Lens,
    tokens: torch.Tensor,
    targets: list[Target],
    mode: str,
    value: float,
    freeze: bool,
    steps: int,
) -> tuple[torch.Tensor, list[int]]:
    """Last-position logits and the greedy continuation, by the independent hooks."""
    model = lens.model
    n = tokens.shape[1]
    hooks = reference_hooks(lens, targets, mode, value)
    if freeze:
        _, cache = model.run_with_cache(
            tokens, names_filter=lambda name: name.endswith("hook_pattern")
        )
        patterns = {name: cache[name] for name in cache}

        def hold(pattern: torch.Tensor, hook: Any) -> torch.Tensor:
            out = pattern.clone()
            out[..., :n, :n] = patterns[hook.name]
            return out

        hooks = hooks + [(name, hold) for name in patterns]
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)[0, -1]
        current = tokens
        for _ in range(steps):
            nxt = model.run_with_hooks(current, fwd_hooks=hooks)[0, -1].argmax()
            current = torch.cat([current, nxt.view(1, 1)], 1)
    return logits, [int(t) for t in current[0, n:]]


def active_targets(lens: Lens, tokens: torch.Tensor) -> list[Target]:
    """The strongest active feature at two positions of two sites (one is a transcoder)."""
    run = lens.run(tokens)
    targets = []
    for site, pos in [("blocks.0.hook_mlp_out", 3), ("blocks.1.hook_resid_mid", 5)]:
        acts = run.features[site][0, pos]
        assert acts.max() > 0, site
        targets.append(Target(site=site, index=int(acts.argmax()), pos=pos))
    return targets


@pytest.mark.parametrize(
    ("mode", "value", "freeze"),
    [("zero", 0.0, False), ("scale", 3.0, False), ("clamp", 2.5, True), ("scale", -1.0, True)],
)
def test_intervention_matches_independent_hooks(
    serve_lens: Lens, mode: str, value: float, freeze: bool
) -> None:
    lens = serve_lens
    assert "blocks.0.hook_mlp_out" in lens.sites
    tokens = lens.to_tokens(PROMPT)
    targets = active_targets(lens, tokens)
    request = InterventionRequest(
        targets=targets,
        mode=mode,
        value=value,
        freeze_attention=freeze,
        max_new_tokens=4,  # type: ignore[arg-type]
    )
    result = intervene(lens, tokens, request)
    logits, continuation = reference_run(lens, tokens, targets, mode, value, freeze, 4)
    torch.testing.assert_close(result.new_logits, logits.float(), atol=2e-5, rtol=1e-5)
    with torch.no_grad():
        clean = lens.model(tokens)[0, -1].float()
    torch.testing.assert_close(result.clean_logits, clean, atol=2e-5, rtol=1e-5)
    assert (result.new_logits - result.clean_logits).abs().max() > 1e-3  # the edit did something
    ids = lens.model.to_tokens(" ".join(result.new_continuation), prepend_bos=False)[0].tolist()
    assert ids == continuation
    new_probs = torch.softmax(logits.float(), -1)
    for row in result.new_top:
        token_id = lens.model.to_single_token(row.token)
        assert row.new_prob == pytest.approx(float(new_probs[token_id]), abs=1e-6)
        assert row.logit_change == pytest.approx(
            float(logits[token_id] - clean[token_id]), abs=1e-4
        )
    assert result.new_top[0].new_prob == pytest.approx(float(new_probs.max()), abs=1e-6)


def test_identity_interventions_change_nothing(serve_lens: Lens) -> None:
    tokens = serve_lens.to_tokens(PROMPT)
    targets = active_targets(serve_lens, tokens)
    for freeze in (False, True):
        request = InterventionRequest(
            targets=targets, mode="scale", value=1.0, freeze_attention=freeze
        )
        result = intervene(serve_lens, tokens, request)
        torch.testing.assert_close(result.new_logits, result.clean_logits, atol=1e-5, rtol=1e-5)
        assert result.new_continuation == result.clean_continuation


def test_all_position_target_and_bad_targets(serve_lens: Lens) -> None:
    tokens = serve_lens.to_tokens(PROMPT)
    target = active_targets(serve_lens, tokens)[0].model_copy(update={"pos": None})
    result = intervene(serve_lens, tokens, InterventionRequest(targets=[target], max_new_tokens=0))
    logits, _ = reference_run(serve_lens, tokens, [target], "zero", 0.0, False, 0)
    torch.testing.assert_close(result.new_logits, logits.float(), atol=2e-5, rtol=1e-5)
    from feature_lens.errors import InputError

    for bad in [
        Target(site="nowhere", index=0),
        Target(site=target.site, index=10**6),
        Target(site=target.site, index=0, pos=99),
    ]:
        with pytest.raises(InputError):
            intervene(serve_lens, tokens, InterventionRequest(targets=[bad]))
    assert Annotations().pinned == []
