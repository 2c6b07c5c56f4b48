"""Dataset statistics and neighbour weights against independent computations."""

from __future__ import annotations

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import (
    PromptSet,
    PromptState,
    baseline_values,
    candidate_nodes,
    direct_edges,
    exact_edges,
    feature,
    gradient_edges,
    node_values,
)
from feature_lens.dashboard import prepare_dataset
from feature_lens.dashboard.data import (
    FeatureId,
    feature_activations,
    feature_label,
    feature_slug,
    logit_effects,
    parse_feature,
    summarise,
)
from feature_lens.dashboard.neighbours import downstream_scores, upstream_scores
from feature_lens.errors import InputError
from feature_lens.graph.node import error
from feature_lens.graph.node import feature as feature_node

SITE = "blocks.0.hook_resid_post"


def brute_force(lens: Lens, prompts: list[str], site: str, index: int) -> list[torch.Tensor]:
    """Each prompt alone (no batching, no padding) through the spliced model."""
    return [lens.run(p).features[site][0, :, index] for p in prompts]


def test_top_examples_and_histogram_match_brute_force(dash_lens: Lens, prompts: list[str]) -> None:
    dataset = prepare_dataset(dash_lens, prompts)
    fid = feature_node(SITE, 7)
    acts = feature_activations(dash_lens, dataset, [fid], batch_size=5)[fid]
    data = summarise(dataset, fid, acts, n_top=5)
    rows = brute_force(dash_lens, prompts, SITE, 7)
    maxima = torch.stack([r.max() for r in rows])
    top = data.groups[0].examples
    assert [e.value for e in top] == pytest.approx(
        sorted(maxima.tolist(), reverse=True)[:5], abs=1e-5
    )
    for example in top:
        assert example.value == pytest.approx(float(maxima[example.prompt]), abs=1e-5)
        assert example.pos == int(torch.argmax(rows[example.prompt]))
        assert (
            example.tokens[example.pos - example.start]
            == dataset.str_tokens[example.prompt][example.pos]
        )
    every = torch.cat(rows)
    n_active = int((every > 0).sum())
    assert data.n_tokens == every.numel() == sum(len(r) for r in rows)
    assert data.n_active == n_active > 0
    assert sum(data.hist_counts) == n_active
    assert data.max_act == pytest.approx(float(every.max()), abs=1e-5)
    for group in data.groups[1:]:
        for example in group.examples:
            assert example.prompt not in {e.prompt for e in top}


def test_unknown_features_and_empty_dataset_are_refused(
    dash_lens: Lens, prompts: list[str]
) -> None:
    dataset = prepare_dataset(dash_lens, prompts[:3])
    with pytest.raises(InputError, match="does not exist"):
        feature_activations(dash_lens, dataset, [feature_node(SITE, 10_000)])
    with pytest.raises(InputError, match="no dictionary at site"):
        feature_activations(dash_lens, dataset, [feature_node("blocks.9.hook_resid_post", 0)])
    with pytest.raises(InputError, match="empty"):
        prepare_dataset(dash_lens, [])
    with pytest.raises(InputError, match="SITE:INDEX"):
        parse_feature("resid-12")
    # A dashboard feature is the feature node at every position; other nodes are refused.
    with pytest.raises(InputError, match="every position"):
        feature_activations(dash_lens, dataset, [feature_node(SITE, 1, pos=0)])
    with pytest.raises(InputError, match="every position"):
        feature_activations(dash_lens, dataset, [error(SITE)])


def test_feature_names_and_the_deprecated_feature_id() -> None:
    site = "blocks.0.hook_resid_post:directions"  # a site name with ':' round-trips
    node = parse_feature(f"{site}:7")
    assert node == feature_node(site, 7)
    assert feature_label(node) == f"{site}:7"
    assert feature_slug(node) == "blocks.0.hook_resid_post_directions-7"
    with pytest.warns(DeprecationWarning, match="FeatureId"):
        assert FeatureId(site, 7) == node


def test_direct_logit_effect_is_the_change_in_logits_with_the_final_scale_frozen(
    dash_lens: Lens,
) -> None:
    """Adding W_dec[i] to the last residual stream, with ln_final's scale held, moves the logits by
    the page's direct logit effect."""
    model = dash_lens.model
    site = "blocks.1.hook_resid_post"
    effect = logit_effects(dash_lens, [feature_node(site, 3)], k=3)[feature_node(site, 3)]
    top, bottom = effect.top, effect.bottom
    tokens = dash_lens.to_tokens("w1 w2 w3")
    _, cache = model.run_with_cache(tokens)
    scale = cache["ln_final.hook_scale"]
    direction = dash_lens.dictionary(site).W_dec[3]
    with torch.no_grad():
        base = model.unembed(model.ln_final(cache[site]))
        hooks = [("ln_final.hook_scale", lambda act, hook: scale)]
        moved = model.run_with_hooks(
            tokens, fwd_hooks=[(site, lambda act, hook: act + direction), *hooks]
        )
    change = ((moved - base)[0, -1] * scale[0, -1]).tolist()
    vocab = [str(t) for t in model.to_str_tokens(torch.arange(model.cfg.d_vocab))]
    for token, value in [*top, *bottom]:
        assert change[vocab.index(token)] == pytest.approx(value, abs=1e-4)
    # The logit histogram counts every token once, in the bin holding its measured change.
    counts, edges = effect.hist_counts, effect.hist_edges
    assert sum(counts) == model.cfg.d_vocab == len(change)
    assert edges[0] == pytest.approx(min(change), abs=1e-4)
    assert edges[-1] == pytest.approx(max(change), abs=1e-4)
    measured = [0] * len(counts)
    near_an_edge = 0
    for value in change:
        b = min(max(0, sum(value >= e for e in edges[1:-1])), len(counts) - 1)
        measured[b] += 1
        near_an_edge += any(abs(value - e) < 1e-4 for e in edges[1:-1])
    assert sum(abs(a - b) for a, b in zip(counts, measured, strict=True)) <= 2 * near_an_edge


@pytest.fixture(scope="module")
def one_prompt(dash_lens: Lens) -> tuple[PromptState, torch.Tensor]:
    tokens = dash_lens.to_tokens("w1 w5 w3 w9 w2 w7 w4")
    prompt_set = PromptSet(tokens)
    state = PromptState(
        tokens,
        None,
        node_values(dash_lens, tokens),
        baseline_values(dash_lens, prompt_set, "zero").row(0),
    )
    return state, tokens


@pytest.mark.parametrize("method", ["attribution", "direct"])
@pytest.mark.parametrize(
    "site",
    # The second stops the forward pass after block 0 (nothing later feeds it).
    ["blocks.1.hook_resid_post", "blocks.0.hook_resid_post"],
)
def test_upstream_weights_equal_the_engine(
    dash_lens: Lens, one_prompt: tuple[PromptState, torch.Tensor], method: str, site: str
) -> None:
    state, tokens = one_prompt
    dataset = prepare_dataset(dash_lens, tokens)
    active = torch.nonzero(state.clean.features[site][0].sum(0) > 0)[:, 0].tolist()[:3]
    rows = [(feature_node(site, i), 0) for i in active]
    ours = upstream_scores(dash_lens, dataset, rows, method)  # type: ignore[arg-type]
    sources = candidate_nodes(dash_lens, state, "sum")
    targets = [feature(site, i) for i in active]
    edges = direct_edges if method == "direct" else gradient_edges
    engine = edges(dash_lens, state, sources, targets)
    checked = 0
    for r, target in enumerate(targets):
        for source in sources:
            if source.kind == "token" or dash_lens.site_order(source.site) >= dash_lens.site_order(
                site
            ):
                continue
            scores = ours[r][source.site]
            got = float(scores[-1] if source.kind == "error" else scores[source.index])
            assert got == pytest.approx(engine[(source, target)], abs=1e-4, rel=1e-4)
            checked += 1
        tokens_total = sum(w for (u, d), w in engine.items() if d == target and u.kind == "token")
        assert float(ours[r]["embed"][0]) == pytest.approx(tokens_total, abs=1e-4, rel=1e-4)
    assert checked > 20


@pytest.mark.parametrize("method", ["attribution", "direct"])
def test_upstream_weights_over_padded_prompts_equal_the_engine_per_prompt(
    dash_lens: Lens, prompts: list[str], method: str
) -> None:
    """Prompts of different lengths share one batched pass (their clean stream is cached on each
    state from it): each row's scores equal the engine on that prompt alone."""
    dataset = prepare_dataset(dash_lens, prompts[:5])
    site = "blocks.1.hook_resid_post"
    rows = [(feature_node(site, i), p) for p in range(5) for i in (3, 11)]
    ours = upstream_scores(dash_lens, dataset, rows, method)  # type: ignore[arg-type]
    edges = direct_edges if method == "direct" else gradient_edges
    for p in range(5):
        tokens = dash_lens.to_tokens(prompts[p])
        assert tokens.shape[1] == int(dataset.lengths[p])
        state = PromptState(
            tokens,
            None,
            node_values(dash_lens, tokens),
            baseline_values(dash_lens, PromptSet(tokens), "zero").row(0),
        )
        sources = [n for n in candidate_nodes(dash_lens, state, "sum") if n.kind == "error"]
        for r, (target, prompt) in enumerate(rows):
            if prompt != p:
                continue
            engine = edges(dash_lens, state, sources, [target])
            for source in sources:
                if dash_lens.site_order(source.site) < dash_lens.site_order(site):
                    got = float(ours[r][source.site][-1])
                    want = engine[(source, target)]
                    assert got == pytest.approx(want, abs=1e-4, rel=1e-4)


def test_downstream_weights_equal_exact_patching(
    dash_lens: Lens, one_prompt: tuple[PromptState, torch.Tensor]
) -> None:
    state, tokens = one_prompt
    dataset = prepare_dataset(dash_lens, tokens)
    site = "blocks.0.hook_mlp_out"
    source_index = int(torch.argmax(state.clean.features[site][0].sum(0)))
    ours = downstream_scores(dash_lens, dataset, [(feature_node(site, source_index), 0)])[0]
    later = "blocks.1.hook_resid_post"
    targets = [feature(later, i) for i in range(0, 48, 5)]
    engine = exact_edges(dash_lens, state, [feature(site, source_index)], targets)
    for target in targets:
        assert float(ours[later][target.index]) == pytest.approx(
            engine[(feature(site, source_index), target)], abs=1e-4
        )
    assert "blocks.0.hook_attn_out" not in ours  # earlier site: no downstream weights


def test_feature_tables_match_numpy_correlations(dash_lens: Lens, prompts: list[str]) -> None:
    """The batched, padded running sums give Pearson's r of np.corrcoef over the real tokens, with
    inputs taken from the plain model (no SAE spliced)."""
    import numpy as np

    from feature_lens.dashboard.tables import Moments

    texts = prompts[:20]
    dataset = prepare_dataset(dash_lens, texts)
    chosen = [3, 7, 11]
    moments = Moments([(SITE, i) for i in chosen])
    feature_activations(
        dash_lens, dataset, [feature_node(SITE, i) for i in chosen], batch_size=6, moments=moments
    )
    feats = torch.cat([dash_lens.run(p).features[SITE][0] for p in texts])
    inputs = torch.cat(
        [dash_lens.model.run_with_cache(dash_lens.to_tokens(p))[1][SITE][0] for p in texts]
    )
    every = torch.cat([feats, inputs], -1).double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.nan_to_num(np.corrcoef(every.T), nan=0.0)
    _, ours = moments.correlations(SITE)
    d_sae = feats.shape[1]
    for row, index in enumerate(chosen):
        assert ours[row].numpy() == pytest.approx(expected[index], abs=1e-5)
    tables = moments.tables(SITE, dash_lens.dictionary(SITE).W_dec, n_rows=3)
    for index in chosen:
        others = [(expected[index, j], j) for j in range(d_sae) if j != index]
        assert [j for j, _ in tables[index].features] == [j for _, j in sorted(others)[::-1][:3]]
        w = dash_lens.dictionary(SITE).W_dec[index].detach()
        assert tables[index].alignment[0][0] == int(w.abs().argmax())
        assert sum(share for *_, share in tables[index].alignment) <= 1.0
