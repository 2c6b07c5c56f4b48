"""Upstream and downstream neighbours of features, across every layer, on the prompts where each
feature is most active, computed by the attribution engine.

For feature f (summed over positions) on one of its top prompts, with the zero baseline:

- **upstream**: the engine's edges from every node of every earlier site — each feature and the
  error term, summed over positions, and the token embeddings together — to f:
  `gradient_row_edges` (method "attribution": attribution patching, Marks et al.) or
  `direct_row_edges` (method "direct": exact in the frozen linear model of direct attribution),
  the engine's per-row kernels: every (feature, prompt) row of a batch whose prompts have one
  length shares one forward and one backward pass;
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.baselines import NodeValues, baseline_values
from feature_lens.attribution.direct import direct_row_edges
from feature_lens.attribution.gradients import gradient_row_edges
from feature_lens.attribution.prompts import PromptSet
from feature_lens.attribution.state import PromptState, batched_patch_edits, stream_hooks
from feature_lens.dashboard.data import Dataset
from feature_lens.graph.node import Node, error
from feature_lens.graph.node import feature as feature_node
from feature_lens.lens import EMBED_SITE, Lens, RunPlan, SiteEdit, frozen_gate
from feature_lens.typed import int_list

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


def _rows(prompts: Mapping[Node, list[int]]) -> list[tuple[Node, int]]:
    return [(f, p) for f, ps in prompts.items() for p in ps]


@dataclass
class PromptStates:
    """Clean values of some dataset prompts from one batched pass (right-padded: the model is
    causal, so each prompt's real positions are what they are alone), from which the engine's
    states are cut: `rows` gives a batched state of prompts of one length, `one` a prompt's own."""

    batch: PromptState
    """Every prompt, padded (zero baseline; the clean stream cached)."""
    where: dict[int, int]
    """Dataset prompt -> its row in `batch`."""
    lengths: dict[int, int]
    """Dataset prompt -> its number of real tokens."""
    logit_sums: dict[int, Tensor]
    """Dataset prompt -> its clean logits summed over its positions `[d_vocab]`."""

    def rows(self, prompts: Sequence[int], *, stream: bool = True) -> PromptState:
        """The engine's state of `prompts` (repeats allowed; all of one length), row r being
        `prompts[r]` cut to its real tokens, with the zero baseline and (`stream`) the clean
        stream cached."""
        n = self.lengths[prompts[0]]
        if any(self.lengths[p] != n for p in prompts):
            raise ValueError(f"prompts of different lengths in one state: {list(prompts)}")
        index = torch.tensor([self.where[p] for p in prompts], device=self.batch.tokens.device)
        clean = self.batch.clean
        values = NodeValues(
            {s: v[index, :n] for s, v in clean.features.items()},
            {s: v[index, :n] for s, v in clean.errors.items()},
            clean.embeddings[index, :n],
        )
        state = PromptState(self.batch.tokens[index, :n], None, values, self.batch.base)
        if stream:
            state.cache.update({name: v[index, :n] for name, v in self.batch.cache.items()})
            state.gates.update({site: v[index, :n] for site, v in self.batch.gates.items()})
        return state

    def one(self, prompt: int) -> PromptState:
        """The batch-1 state of `prompt` (values only: for patches, which need no stream)."""
        return self.rows([prompt], stream=False)


def prompt_states_of(
    lens: Lens, dataset: Dataset, prompts: Sequence[int], targets: Sequence[str] = ()
) -> PromptStates:
    """States of `prompts` from one forward pass over them: node values, logits, and the clean
    stream the engine's edge passes start from (`attribution.state.clean_stream`, recorded in the
    same pass: the splices are identities) and the targets' clean gates (`targets.clean_gates`,
    of the `targets` sites, from the pass's own pre-activations), instead of a pass of each per
    prompt."""
    prompts = sorted(set(prompts))
    tokens = dataset.tokens[prompts].to(lens.device)
    with torch.no_grad():
        plan = RunPlan(record_hooks=stream_hooks(lens), record_pre=targets)
        result = lens.forward(tokens, plan)
    assert result.embeddings is not None
    clean = NodeValues(result.features, result.errors, result.embeddings)
    batch = PromptState(tokens, None, clean, baseline_values(lens, PromptSet(tokens), "zero"))
    batch.cache.update(result.hooks)
    batch.gates.update(
        {site: frozen_gate(result.features[site], result.pre_acts[site]) for site in targets}
    )
    lengths = {p: int(dataset.lengths[p]) for p in prompts}
    logit_sums = {p: result.logits[row, : lengths[p]].sum(0) for row, p in enumerate(prompts)}
    return PromptStates(batch, {p: row for row, p in enumerate(prompts)}, lengths, logit_sums)


def upstream_scores(
    lens: Lens,
    dataset: Dataset,
    rows: Sequence[tuple[Node, int]],
    method: UpstreamMethod = "attribution",
    states: PromptStates | None = None,
) -> list[dict[str, Tensor]]:
    """For each row (feature, prompt): site -> upstream scores `[d_sae + 1]` (features, then the
    error term) at every earlier site, and `"embed"` -> `[1]` (all token embeddings together).
    `states`: the prompts' states when already built (`prompt_states_of`).

    Rows whose prompts have the same length share one engine call (`gradient_row_edges` /
    `direct_row_edges`: one forward and one backward for all of them)."""
    if not rows:
        return []
    last = max(lens.site_order(f.site) for f, _ in rows)
    sites = [s for s in lens.sites if lens.site_order(s) < last]
    states = states or prompt_states_of(
        lens, dataset, [p for _, p in rows], sorted({f.site for f, _ in rows})
    )
    out: list[dict[str, Tensor]] = [{} for _ in rows]
    groups: dict[int, list[int]] = {}
    for r, (_, prompt) in enumerate(rows):
        groups.setdefault(states.lengths[prompt], []).append(r)
    for members in groups.values():
        state = states.rows([rows[r][1] for r in members])
        # With the zero baseline an inactive feature scores 0: only features active on one of
        # the group's prompts are sources.
        upstream: list[Node] = []
        active: dict[str, Tensor] = {}
        for site in sites:
            fired = state.clean.features[site].sum((0, 1)) != 0
            active[site] = torch.nonzero(fired)[:, 0].cpu()
            upstream += [Node("feature", site, None, i) for i in int_list(active[site])]
            upstream.append(error(site))
        upstream.append(ALL_TOKENS)
        targets = [rows[r][0] for r in members]
        if method == "direct":
            matrix = direct_row_edges(lens, state, upstream, targets)
        else:
            matrix = gradient_row_edges(lens, state, upstream, targets)
        matrix = matrix.detach().cpu()
        # Per site, every feature's column (zero where inactive) and the error term's, all rows.
        start, full = 0, dict[str, Tensor]()
        for site in sites:
            n = len(active[site])
            full[site] = matrix.new_zeros(lens.dictionary(site).d_sae + 1, len(members))
            full[site][active[site]] = matrix[start : start + n]
            full[site][-1] = matrix[start + n]
            start += n + 1
        for j, r in enumerate(members):
            order = lens.site_order(rows[r][0].site)
            for site in sites:
                if lens.site_order(site) < order:
                    out[r][site] = full[site][:, j]
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
    single = {p: states.one(p) for p in {p for _, p in rows}}
    adds: dict[str, Tensor] = {}
    for r, (f, prompt) in enumerate(rows):
        state = single[prompt]
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
        state = single[prompt]
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
    prompts: Mapping[Node, Sequence[int]],
    *,
    method: UpstreamMethod = "attribution",
    n_prompts: int = 4,
    k: int = 12,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[Node, Neighbours]:
    """Upstream (attribution patching or direct) and downstream (exact) neighbours of each feature,
    averaged over its prompts in `prompts` (its strongest, by activation summed over positions:
    `top_prompts`, or `FeatureStats.strongest_prompts`), at most `n_prompts` of them (see the
    module docstring)."""
    chosen = {f: list(ps)[:n_prompts] for f, ps in prompts.items()}
    rows = _rows(chosen)
    # Batches of rows sorted by prompt, so that rows sharing a prompt share its state and passes.
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    up: list[dict[str, Tensor]] = [{} for _ in rows]
    down: list[dict[str, Tensor]] = [{} for _ in rows]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc="neighbours", disable=not progress, unit="batch"):
        batch = [rows[i] for i in chunk]
        sites = sorted({f.site for f, _ in batch})
        states = prompt_states_of(lens, dataset, [p for _, p in batch], sites)
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
    for feature, ps in chosen.items():
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
