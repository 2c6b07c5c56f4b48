"""Block-local edges equal the full-model result (float64, a 4-layer model).

`gradient_edge_matrix` runs one block-local pass per target site (from the cached stream, leaves at
the upstream sites only, stopping after the target's block) and reads targets as one encoder
column times the clean gate. The reference here runs the whole model from the tokens with raw
TransformerLens hooks, splices every dictionary the textbook way, reads each target with the
SAE's own `encode` (its real activation function) and takes one plain backward per target: no
Lens code, no block-locality, no gate. Upstream writes come from the SAE's own `decode`.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import (
    Node,
    PromptSet,
    PromptState,
    candidate_nodes,
    direct_edge_matrix,
    direct_row_edges,
    feature,
    gradient_edge_matrix,
    gradient_row_edges,
    prompt_batch,
    prompt_states,
)
from feature_lens.attribution.direct import clean_freeze
from feature_lens.lens import EMBED_SITE
from tests.attribution.conftest import make_state
from tests.conftest import make_model, make_sae

F64 = torch.float64
CLEAN = "w1 w5 w3 w9 w2 w7 w4 w8"
CORRUPT = "w1 w5 w8 w9 w2 w6 w4 w3"


def _dictionaries(model: Any) -> list[Any]:
    d = model.cfg.d_model
    return [
        make_sae("standard", d, "blocks.0.hook_resid_post", seed=11, dtype=F64),
        make_sae("topk", d, "blocks.1.hook_attn_out", seed=12, dtype=F64),
        make_sae("jumprelu", d, "blocks.1.hook_resid_post", seed=13, dtype=F64),
        make_sae(
            "transcoder",
            d,
            "blocks.2.ln2.hook_normalized",
            seed=14,
            dtype=F64,
            hook_name_out="blocks.2.hook_mlp_out",
        ),
        make_sae("gated", d, "blocks.2.hook_resid_post", seed=15, dtype=F64),
        make_sae("standard", d, "blocks.3.hook_resid_post", seed=16, dtype=F64),
    ]


@pytest.fixture(scope="module")
def deep(tokenizer: Any) -> tuple[Any, Lens]:
    model = make_model(tokenizer, n_layers=4, dtype=F64, seed=7)
    return model, Lens(model, _dictionaries(model))


def _target_gradients(
    lens: Lens,
    state: Any,
    d: Node,
    upstream: list[Node],
    detached: bool,
    frozen: list[tuple[str, Any]],
    gates: dict[str, torch.Tensor] | None,
) -> dict[str, torch.Tensor]:
    """Gradient of target d w.r.t. every upstream site's output, in one full-model backward."""
    leaves: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Any]] = list(frozen)

    def embed(act: torch.Tensor, hook: Any) -> torch.Tensor:
        leaves[EMBED_SITE] = torch.zeros_like(act, requires_grad=True)
        return act + leaves[EMBED_SITE]

    hooks.append(("blocks.0.hook_resid_pre", embed))
    for site, dictionary in lens.dictionaries.items():
        sae = dictionary.sae

        def grab(act: torch.Tensor, hook: Any, site: str = site) -> torch.Tensor:
            inputs[site] = act
            return act

        def splice(act: torch.Tensor, hook: Any, site: str = site, sae: Any = sae) -> Any:
            x_hat = sae.decode(sae.encode(inputs[site]))
            out = x_hat + (act - x_hat).detach() if detached else act
            leaves[site] = torch.zeros_like(out, requires_grad=True)
            return out + leaves[site]

        hooks += [(dictionary.hook_in, grab), (dictionary.hook_out, splice)]
    with torch.enable_grad():
        lens.model.run_with_hooks(state.tokens, fwd_hooks=hooks)
        sae = lens.dictionary(d.site).sae
        x = inputs[d.site]
        if gates is None:
            value = sae.encode(x)[0, d.pos, d.index]
        else:
            captured: list[torch.Tensor] = []
            handle = sae.hook_sae_acts_pre.register_forward_hook(
                lambda _m, _i, o: captured.append(o)
            )
            sae.encode(x)
            handle.remove()
            value = captured[-1][0, d.pos, d.index] * gates[d.site][0, d.pos, d.index]
        sites = [s for s in leaves if s in {_site(u) for u in upstream}]
        grads = torch.autograd.grad(value, [leaves[s] for s in sites], allow_unused=True)
    return {s: g for s, g in zip(sites, grads, strict=True) if g is not None}


def _reference(
    lens: Lens,
    state: Any,
    upstream: list[Node],
    targets: list[Node],
    *,
    detached: bool,
    frozen: list[tuple[str, Any]],
    gates: dict[str, torch.Tensor] | None,
) -> torch.Tensor:
    """Full-model edges, one backward per target, from hand-written splices."""
    out = torch.zeros(len(upstream), len(targets), dtype=F64)
    for j, d in enumerate(targets):
        grad = _target_gradients(lens, state, d, upstream, detached, frozen, gates)
        for i, u in enumerate(upstream):
            site = _site(u)
            if lens.site_order(site) >= lens.site_order(d.site) or site not in grad:
                continue
            out[i, j] = float((grad[site][0, u.pos] * _write(lens, state, u)).sum())
    return out


def _write(lens: Lens, state: Any, u: Node) -> torch.Tensor:
    """What moving u from its baseline to its clean value adds at its position, by decode."""
    if u.kind == "token":
        return state.clean.embeddings[0, u.pos] - state.base.embeddings[0, u.pos]
    if u.kind == "error":
        return state.clean.errors[u.site][0, u.pos] - state.base.errors[u.site][0, u.pos]
    sae = lens.dictionary(u.site).sae
    f = state.clean.features[u.site][0, u.pos].clone()
    moved = f.clone()
    moved[u.index] = state.base.features[u.site][0, u.pos, u.index]
    with torch.no_grad():
        return sae.decode(f[None])[0] - sae.decode(moved[None])[0]


def _site(node: Node) -> str:
    return EMBED_SITE if node.kind == "token" else node.site


def _nodes(lens: Lens, state: Any, tokens: bool) -> tuple[list[Node], list[Node]]:
    """Features and errors of every site (and tokens, if asked) upstream; features targets. Without
    tokens, the passes for targets after block 0 start from the cached stream, not the embedding."""
    nodes = candidate_nodes(lens, state, "keep")
    upstream: list[Node] = [n for n in nodes if n.kind == "token"][:3] if tokens else []
    targets: list[Node] = []
    for site in lens.sites:
        features = [n for n in nodes if n.site == site and n.kind == "feature"]
        upstream += features[:4] + [n for n in nodes if n.site == site and n.kind == "error"][:2]
        targets += features[-3:]
    return upstream, targets


@pytest.mark.parametrize(("mode", "tokens"), [("straight_through", False), ("detached", True)])
def test_block_local_total_edges_equal_the_full_model(
    deep: tuple[Any, Lens], mode: str, tokens: bool
) -> None:
    model, lens = deep
    lens = Lens(model, list(lens.dictionaries.values()), gradient_mode=mode)  # type: ignore[arg-type]
    state = make_state(lens, PromptSet.build(lens, CLEAN, CORRUPT))
    upstream, targets = _nodes(lens, state, tokens)
    got = gradient_edge_matrix(lens, state, upstream, targets, batch_size=4)
    expected = _reference(
        lens, state, upstream, targets, detached=mode == "detached", frozen=[], gates=None
    )
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    assert expected.abs().max() > 1e-2
    if not tokens:
        # Sources from block 1 on only: passes start from the cached stream before block 1.
        later = [i for i, u in enumerate(upstream) if lens.site_layer(_site(u)) >= 1]
        starts: list[int | None] = []
        forward = lens.forward

        def spy(tokens: torch.Tensor, plan: Any = None) -> Any:
            starts.append(plan.start_at_layer)
            return forward(tokens, plan)

        lens.forward = spy  # type: ignore[method-assign]
        local = gradient_edge_matrix(lens, state, [upstream[i] for i in later], targets)
        assert 1 in starts
        torch.testing.assert_close(local, expected[later], rtol=0, atol=1e-10)


def test_block_local_direct_edges_equal_the_full_frozen_model(deep: tuple[Any, Lens]) -> None:
    model, lens = deep
    state = make_state(lens, PromptSet.build(lens, CLEAN, CORRUPT))
    upstream, targets = _nodes(lens, state, tokens=False)
    freeze = clean_freeze(lens, state.tokens, mlp="stop")
    got = gradient_edge_matrix(lens, state, upstream, targets, freeze=freeze, memory_budget=1)
    expected = _frozen_reference(model, lens, state, upstream, targets)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    assert expected.abs().max() > 1e-2


def _frozen_reference(
    model: Any, lens: Lens, state: Any, upstream: list[Node], targets: list[Node]
) -> torch.Tensor:
    """`_reference` in direct attribution's frozen model (LayerNorm scales, attention patterns
    and MLP outputs detached; targets' activation functions frozen at their clean gates)."""
    frozen = [
        (name, lambda act, hook: act.detach())
        for name in model.hook_dict
        if name.endswith(("hook_scale", "hook_pattern", "hook_mlp_out"))
    ]
    gates: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        _, cache = model.run_with_cache(state.tokens)
        for site, dictionary in lens.dictionaries.items():
            sae = dictionary.sae
            captured: list[torch.Tensor] = []
            handle = sae.hook_sae_acts_pre.register_forward_hook(
                lambda _m, _i, o, captured=captured: captured.append(o)
            )
            post = sae.encode(cache[dictionary.hook_in])
            handle.remove()
            pre = captured[-1]
            gates[site] = torch.where(pre != 0, post / torch.where(pre != 0, pre, 1), 0)
    return _reference(lens, state, upstream, targets, detached=False, frozen=frozen, gates=gates)


OTHER = "w2 w6 w3 w1 w9 w7 w5 w4"


def _row_case(lens: Lens, tokens: bool) -> tuple[PromptState, list[Node], list[Node]]:
    """A state of four prompts (one repeated) with their corrupted baselines, upstream nodes of
    every site, and one target per row at different sites and positions."""
    prompts = PromptSet.build(lens, [CLEAN, CORRUPT, OTHER, CLEAN], [CORRUPT, OTHER, CLEAN, OTHER])
    batch = prompt_batch(lens, prompts)
    upstream, _ = _nodes(lens, batch.row(0), tokens)
    targets = [_nodes(lens, batch.row(r), tokens)[1][-1 - 2 * r] for r in range(batch.batch)]
    assert len({d.site for d in targets}) > 1
    return batch, upstream, targets


@pytest.mark.parametrize(("mode", "tokens"), [("straight_through", False), ("detached", True)])
def test_row_edges_equal_the_full_model_on_each_rows_prompt(
    deep: tuple[Any, Lens], mode: str, tokens: bool
) -> None:
    """`gradient_row_edges` (one pass for the whole batch, target r on prompt r) equals the
    reference run on each prompt alone, and the per-prompt kernel with all-position nodes."""
    model, lens = deep
    lens = Lens(model, list(lens.dictionaries.values()), gradient_mode=mode)  # type: ignore[arg-type]
    batch, upstream, targets = _row_case(lens, tokens)
    got = gradient_row_edges(lens, batch, upstream, targets)
    for r, target in enumerate(targets):
        expected = _reference(
            lens,
            batch.row(r),
            upstream,
            [target],
            detached=mode == "detached",
            frozen=[],
            gates=None,
        )
        torch.testing.assert_close(got[:, r : r + 1], expected, rtol=0, atol=1e-10)
        assert expected.abs().max() > 1e-3
    summed = candidate_nodes(lens, batch.row(0), "sum")
    whole = [feature(d.site, d.index) for d in targets]  # type: ignore[arg-type]
    got = gradient_row_edges(lens, batch, summed, whole)
    for r, target in enumerate(whole):
        expected = gradient_edge_matrix(lens, batch.row(r), summed, [target])
        torch.testing.assert_close(got[:, r : r + 1], expected, rtol=0, atol=1e-10)
        assert expected.abs().max() > 1e-3


def test_direct_row_edges_equal_the_full_frozen_model_on_each_rows_prompt(
    deep: tuple[Any, Lens],
) -> None:
    model, lens = deep
    batch, upstream, targets = _row_case(lens, tokens=True)
    got = direct_row_edges(lens, batch, upstream, targets)
    for r, target in enumerate(targets):
        expected = _frozen_reference(model, lens, batch.row(r), upstream, [target])
        torch.testing.assert_close(got[:, r : r + 1], expected, rtol=0, atol=1e-10)
        assert expected.abs().max() > 1e-3
    with pytest.raises(ValueError, match="one target per row"):
        direct_row_edges(lens, batch, upstream, targets[:2])
    # MLPs linearised at each prompt's own gates: the per-prompt kernel on each row's prompt.
    got = direct_row_edges(lens, batch, upstream, targets, mlp="linear")
    for r, target in enumerate(targets):
        expected = direct_edge_matrix(lens, batch.row(r), upstream, [target], mlp="linear")
        torch.testing.assert_close(got[:, r : r + 1], expected, rtol=0, atol=1e-10)
        assert expected.abs().max() > 1e-3


def test_prompt_batch_rows_are_the_prompt_states(deep: tuple[Any, Lens]) -> None:
    _, lens = deep
    prompts = PromptSet.build(lens, [CLEAN, OTHER], [CORRUPT, CLEAN])
    batch = prompt_batch(lens, prompts)
    for r, state in enumerate(prompt_states(lens, prompts)):
        row = batch.row(r)
        torch.testing.assert_close(row.tokens, state.tokens)
        for site in lens.sites:
            torch.testing.assert_close(row.clean.features[site], state.clean.features[site])
            torch.testing.assert_close(row.base.errors[site], state.base.errors[site])
        torch.testing.assert_close(row.base.embeddings, state.base.embeddings)


def test_memory_budget_changes_batching_not_results(deep: tuple[Any, Lens]) -> None:
    from feature_lens.attribution import LogitDiff, attribute
    from feature_lens.errors import InputError

    _, lens = deep
    prompts = PromptSet.build(lens, CLEAN, CORRUPT)
    metric = LogitDiff(correct=5, wrong=9)
    wide = attribute(lens, prompts, metric, max_nodes=24, progress=False)
    narrow = attribute(lens, prompts, metric, max_nodes=24, progress=False, memory_budget=1)
    assert wide.edges.keys() == narrow.edges.keys()
    for key, weight in wide.edges.items():
        assert narrow.edges[key] == pytest.approx(weight, abs=1e-12)
    with pytest.raises(InputError, match="memory_budget"):
        attribute(lens, prompts, metric, max_nodes=4, progress=False, memory_budget=0)


def test_memory_size_flag() -> None:
    import argparse

    from feature_lens.cli.attribute import memory_size

    assert memory_size("2GB") == 2 * 2**30
    assert memory_size("512mb") == 512 * 2**20
    assert memory_size("1000") == 1000
    for bad in ("0", "lots", "2 TB", "-1GB"):
        with pytest.raises(argparse.ArgumentTypeError, match="memory size"):
            memory_size(bad)


def test_streamed_states_equal_prompt_states_and_are_not_kept(deep: tuple[Any, Lens]) -> None:
    """`attribute` streams prompts: each state is built when iterated and dropped after, so
    peak memory does not grow with the number of prompts; the states equal `prompt_states`."""
    import gc
    import weakref

    from feature_lens.attribution import prompt_states
    from feature_lens.attribution.state import StreamedStates

    _, lens = deep
    prompts = PromptSet.build(lens, [CLEAN, CORRUPT, CLEAN], [CORRUPT, CLEAN, CLEAN])
    for kind in ("corrupted", "zero"):
        eager = prompt_states(lens, prompts, kind)  # type: ignore[arg-type]
        refs = []
        for i, state in enumerate(StreamedStates(lens, prompts, kind)):  # type: ignore[arg-type]
            for site in lens.sites:
                torch.testing.assert_close(
                    state.clean.features[site], eager[i].clean.features[site]
                )
                torch.testing.assert_close(state.base.features[site], eager[i].base.features[site])
            torch.testing.assert_close(state.base.embeddings, eager[i].base.embeddings)
            refs.append(weakref.ref(state))
            del state
        gc.collect()
        assert all(ref() is None for ref in refs)
