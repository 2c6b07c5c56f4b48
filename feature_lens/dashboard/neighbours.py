"""Upstream and downstream neighbours of features, across every layer, on the prompts where each
feature is most active, computed by the attribution engine.

For feature f (summed over positions) on one of its top prompts, with the zero baseline:

- **upstream**: the engine's edges from every node of every earlier site — each feature and the
  error term, summed over positions, and the token embeddings together — to f:
  `gradient_edge_matrix` (method "attribution": attribution patching, Marks et al.) or
  `direct_edge_matrix` (method "direct": exact in the frozen linear model of direct attribution);
- **downstream**, method "exact" (activation patching): the change in every later feature's
  activation (summed over positions) and in every logit (summed over positions) when f is set to
  zero at every position and everything downstream is recomputed — the engine's patch
  (`batched_patch_edits`, one row per feature sharing the prompt) in one forward pass.

Each prompt is cut to its real tokens (the dataset is right-padded; the model is causal). Weights
are means over the prompts used. The error share of a site is the error term's share of the total
|upstream weight| at that site (features and error): how much of f's input from that site the
dictionary does not explain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.baselines import NodeValues
from feature_lens.attribution.direct import direct_edge_matrix
from feature_lens.attribution.gradients import gradient_edge_matrix
from feature_lens.attribution.state import PromptState, batched_patch_edits
from feature_lens.dashboard.data import Dataset
from feature_lens.graph.node import Node, error
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import EMBED_SITE, Lens, RunPlan, SiteEdit

UpstreamMethod = Literal["attribution", "direct"]
ALL_TOKENS = Node("token", EMBED_SITE)
"""Every token embedding at once (the upstream "tokens" neighbour)."""


@dataclass
class Link:
    """One neighbour (a feature, an error term, the token embeddings, or a logit) with its weight."""

    node: Node
    weight: float
    method: str

    @property
    def kind(self) -> str:
        """feature / error / token / logit."""
        return self.node.kind

    @property
    def site(self) -> str:
        """The neighbour's site."""
        return self.node.site

    @property
    def index(self) -> int | None:
        """Its feature index (None unless a feature)."""
        return self.node.index

    @property
    def feature(self) -> Node | None:
        """The neighbour's node when it is a feature (a dashboard feature: every position)."""
        return self.node if self.kind == "feature" else None


@dataclass
class Neighbours:
    """A feature's strongest upstream and downstream links, and the error share per upstream site."""

    upstream: list[Link] = field(default_factory=list[Link])
    downstream: list[Link] = field(default_factory=list[Link])
    logits: list[tuple[str, float]] = field(default_factory=list[tuple[str, float]])
    error_share: dict[str, float] = field(default_factory=dict[str, float])
    prompts: list[int] = field(default_factory=list[int])


def top_prompts(acts: Tensor, n: int) -> list[int]:
    """The `n` prompts where a feature's activation (summed over positions) is largest and > 0."""
    totals = acts.sum(1)
    order = torch.argsort(totals, descending=True, stable=True)[:n]
    return [int(p) for p in order if totals[p] > 0]


def _rows(prompts: dict[Node, list[int]]) -> list[tuple[Node, int]]:
    return [(f, p) for f, ps in prompts.items() for p in ps]


def _by_prompt(rows: Sequence[tuple[Node, int]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for r, (_, prompt) in enumerate(rows):
        groups.setdefault(prompt, []).append(r)
    return groups


@dataclass
class PromptStates:
    """The engine's states of some dataset prompts (each cut to its real tokens; zero baseline),
    and each prompt's clean logits summed over its positions `[d_vocab]`."""

    states: dict[int, PromptState]
    logit_sums: dict[int, Tensor]


def prompt_states_of(lens: Lens, dataset: Dataset, prompts: Sequence[int]) -> PromptStates:
    """States of `prompts` from one forward pass over them (right-padded: the model is causal, so
    each prompt's real positions are what they are alone)."""
    prompts = sorted(set(prompts))
    tokens = dataset.tokens[prompts].to(lens.device)
    # The clean stream the engine's edge passes start from (`attribution.state.clean_stream`:
    # unspliced, every block's input and every dictionary's input), recorded for all prompts in
    # one pass instead of one forward per prompt; any name missing is filled by the engine.
    stream_hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(lens.model.cfg.n_layers)]
    stream_hooks = sorted({*stream_hooks, *(lens.dictionary(s).hook_in for s in lens.sites)})
    with torch.no_grad():
        result = lens.forward(tokens, RunPlan())
        stream = lens.forward(tokens, RunPlan(splice=False, record_hooks=stream_hooks)).hooks
    assert result.embeddings is not None
    clean = NodeValues(result.features, result.errors, result.embeddings)
    zero = NodeValues(
        {s: torch.zeros_like(v[:1, :1]) for s, v in clean.features.items()},
        {s: torch.zeros_like(v[:1, :1]) for s, v in clean.errors.items()},
        torch.zeros_like(clean.embeddings[:1, :1]),
    )
    states: dict[int, PromptState] = {}
    logit_sums: dict[int, Tensor] = {}
    for row, prompt in enumerate(prompts):
        n = int(dataset.lengths[prompt])
        values = clean.row(row)
        values = NodeValues(
            {s: v[:, :n] for s, v in values.features.items()},
            {s: v[:, :n] for s, v in values.errors.items()},
            values.embeddings[:, :n],
        )
        states[prompt] = PromptState(tokens[row : row + 1, :n], None, values, zero)
        states[prompt].cache.update({name: stream[name][row, :n] for name in stream_hooks})
        logit_sums[prompt] = result.logits[row, :n].sum(0)
    return PromptStates(states, logit_sums)


def upstream_scores(
    lens: Lens,
    dataset: Dataset,
    rows: Sequence[tuple[Node, int]],
    method: UpstreamMethod = "attribution",
    states: PromptStates | None = None,
) -> list[dict[str, Tensor]]:
    """For each row (feature, prompt): site -> upstream scores `[d_sae + 1]` (features, then the
    error term) at every earlier site, and `"embed"` -> `[1]` (all token embeddings together).
    `states`: the prompts' states when already built (`prompt_states_of`)."""
    if not rows:
        return []
    last = max(lens.site_order(f.site) for f, _ in rows)
    sites = [s for s in lens.sites if lens.site_order(s) < last]
    states = states or prompt_states_of(lens, dataset, [p for _, p in rows])
    out: list[dict[str, Tensor]] = [{} for _ in rows]
    for prompt, members in _by_prompt(rows).items():
        state = states.states[prompt]
        # With the zero baseline an inactive feature scores 0: only active ones are sources.
        upstream: list[Node] = []
        active: dict[str, Tensor] = {}
        for site in sites:
            active[site] = torch.nonzero(state.clean.features[site][0].sum(0) != 0)[:, 0].cpu()
            upstream += [Node("feature", site, None, int(i)) for i in active[site]]
            upstream.append(error(site))
        upstream.append(ALL_TOKENS)
        targets = [rows[r][0] for r in members]
        if method == "direct":
            matrix = direct_edge_matrix(lens, state, upstream, targets)
        else:
            matrix = gradient_edge_matrix(lens, state, upstream, targets)
        matrix = matrix.detach().cpu()
        for j, r in enumerate(members):
            order = lens.site_order(rows[r][0].site)
            start = 0
            for site in sites:
                n = len(active[site])
                if lens.site_order(site) < order:
                    scores = matrix.new_zeros(lens.dictionary(site).d_sae + 1)
                    scores[active[site]] = matrix[start : start + n, j]
                    scores[-1] = matrix[start + n, j]
                    out[r][site] = scores
                start += n + 1
            out[r][EMBED_SITE] = matrix[-1:, j]
    return out


def downstream_scores(
    lens: Lens,
    dataset: Dataset,
    rows: Sequence[tuple[Node, int]],
    states: PromptStates | None = None,
) -> list[dict[str, Tensor]]:
    """For each row (feature, prompt): later site -> change `[d_sae]` of each feature (summed over
    positions) when the feature is zeroed at every position, and `"logits"` -> `[d_vocab]`. One
    patched forward pass for all rows (the engine's patch of each row's prompt, right-padded)."""
    if not rows:
        return []
    states = states or prompt_states_of(lens, dataset, [p for _, p in rows])
    first = min(lens.site_order(f.site) for f, _ in rows)
    later = [s for s in lens.sites if lens.site_order(s) > first]
    width = max(int(dataset.lengths[p]) for _, p in rows)
    tokens = dataset.tokens[[p for _, p in rows], :width].to(lens.device)
    mask = dataset.mask[[p for _, p in rows], :width].to(lens.device)
    adds: dict[str, Tensor] = {}
    for r, (f, prompt) in enumerate(rows):
        state = states.states[prompt]
        for site, edit in batched_patch_edits(lens, state, [f]).items():
            assert edit.add is not None
            if site not in adds:
                adds[site] = edit.add.new_zeros(len(rows), width, edit.add.shape[-1])
            adds[site][r, : edit.add.shape[1]] = edit.add[0]
    with torch.no_grad():
        plan = RunPlan(edits={s: SiteEdit(add=a) for s, a in adds.items()}, encode_sites=later)
        patched = lens.forward(tokens, plan)
    m = mask[..., None].to(patched.logits.dtype)
    logits = (patched.logits * m).sum(1)
    out: list[dict[str, Tensor]] = []
    for r, (f, prompt) in enumerate(rows):
        state = states.states[prompt]
        order = lens.site_order(f.site)
        row = {
            s: (state.clean.features[s][0].sum(0) - (patched.features[s][r] * m[r]).sum(0)).cpu()
            for s in later
            if lens.site_order(s) > order
        }
        row["logits"] = (states.logit_sums[prompt] - logits[r]).cpu()
        out.append(row)
    return out


def _mean(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    keys: list[str] = list(rows[0]) if rows else []
    return {k: torch.stack([r[k] for r in rows]).mean(0) for k in keys}


def neighbours(
    lens: Lens,
    dataset: Dataset,
    acts: dict[Node, Tensor],
    *,
    method: UpstreamMethod = "attribution",
    n_prompts: int = 4,
    k: int = 12,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[Node, Neighbours]:
    """Upstream (attribution patching or direct) and downstream (exact) neighbours of each feature,
    averaged over its `n_prompts` top prompts (see the module docstring)."""
    prompts = {f: top_prompts(a, n_prompts) for f, a in acts.items()}
    rows = _rows(prompts)
    # Batches of rows sorted by prompt, so that rows sharing a prompt share its state and passes.
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    up: list[dict[str, Tensor]] = [{} for _ in rows]
    down: list[dict[str, Tensor]] = [{} for _ in rows]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc="neighbours", disable=not progress, unit="batch"):
        batch = [rows[i] for i in chunk]
        states = prompt_states_of(lens, dataset, [p for _, p in batch])
        scores = zip(
            upstream_scores(lens, dataset, batch, method, states),
            downstream_scores(lens, dataset, batch, states),
            strict=True,
        )
        for i, (u, d) in zip(chunk, scores, strict=True):
            up[i], down[i] = u, d
    vocab = (
        lens.model.to_str_tokens(torch.arange(int(lens.model.cfg.d_vocab)))
        if lens.model.tokenizer is not None
        else None
    )
    result: dict[Node, Neighbours] = {}
    cursor = 0
    for feature, ps in prompts.items():
        n = len(ps)
        mean_up, mean_down = _mean(up[cursor : cursor + n]), _mean(down[cursor : cursor + n])
        cursor += n
        result[feature] = _links(mean_up, mean_down, method, k, vocab)
        result[feature].prompts = ps
    return result


def _links(
    up: dict[str, Tensor],
    down: dict[str, Tensor],
    method: str,
    k: int,
    vocab: list[str] | None,
) -> Neighbours:
    candidates: list[Link] = []
    share: dict[str, float] = {}
    for site, scores in up.items():
        if site == EMBED_SITE:
            candidates.append(Link(ALL_TOKENS, float(scores[0]), method))
            continue
        feats, err = scores[:-1], float(scores[-1])
        total = float(feats.abs().sum()) + abs(err)
        share[site] = abs(err) / total if total > 0 else 0.0
        candidates.append(Link(error(site), err, method))
        top = torch.topk(feats.abs(), min(k, feats.numel())).indices
        candidates += [
            Link(feature_node(site, int(i)), float(feats[i]), method) for i in top if feats[i] != 0
        ]
    upstream = sorted(candidates, key=lambda link: -abs(link.weight))[:k]
    downstream: list[Link] = []
    for site, scores in down.items():
        if site == "logits":
            continue
        top = torch.topk(scores.abs(), min(k, scores.numel())).indices
        downstream += [
            Link(feature_node(site, int(i)), float(scores[i]), "exact")
            for i in top
            if scores[i] != 0
        ]
    downstream = sorted(downstream, key=lambda link: -abs(link.weight))[:k]
    logits: list[tuple[str, float]] = []
    if "logits" in down:
        change = down["logits"]
        for i in torch.topk(change.abs(), min(k, change.numel())).indices:
            name = vocab[int(i)] if vocab is not None else str(int(i))
            logits.append((name, float(change[i])))
    return Neighbours(upstream, downstream, logits, share)
