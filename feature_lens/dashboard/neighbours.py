"""Upstream and downstream neighbours of features, across every layer, on the prompts where each
feature is most active.

For feature f (summed over positions) on one of its top prompts, with the zero baseline:

- **upstream**, method "attribution" (attribution patching, Marks et al.): the edge from node u at
  an earlier site is `d a_f / d out_s . a_u` — the gradient of f's activation w.r.t. the site's
  output, times u's value (`W_dec[u]` times its activation for a feature; the error vector for an
  error term; the embedding for tokens); method "direct": the same in the frozen linear model of
  direct attribution (LayerNorm scales, attention patterns and MLP outputs frozen, f's activation
  function replaced by its frozen gate), where it is exact. These are the numbers
  `feature_lens.attribution.gradient_edges` / `direct_edges` give for `positions="sum"` nodes with
  the zero baseline; here one backward pass serves every upstream node of a row, and rows of
  different features and prompts share a batch (the tests check the two agree).
- **downstream**, method "exact" (activation patching): the change in every later feature's
  activation (summed over positions) and in every logit (summed over positions) when f is set to
  zero at every position and everything downstream is recomputed: `exact_edges` with f as the
  upstream node, for all later features at once.

Weights are means over the prompts used. The error share of a site is the error term's share of
the total |upstream weight| at that site (features and error): how much of f's input from that
site the dictionary does not explain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from feature_lens.attribution.direct import clean_freeze
from feature_lens.dashboard.data import Dataset, FeatureId, stop_layer
from feature_lens.lens import EMBED_SITE, Lens, RunPlan, SiteEdit

UpstreamMethod = Literal["attribution", "direct"]


@dataclass
class Link:
    """One neighbour: a feature, an error term, the token embeddings, or a logit (token string)."""

    kind: Literal["feature", "error", "token", "logit"]
    site: str
    index: int | None
    weight: float
    method: str

    @property
    def feature(self) -> FeatureId | None:
        """The neighbour as a `FeatureId` when it is a feature."""
        return (
            FeatureId(self.site, self.index)
            if self.kind == "feature" and self.index is not None
            else None
        )


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


def _rows(prompts: dict[FeatureId, list[int]]) -> list[tuple[FeatureId, int]]:
    return [(f, p) for f, ps in prompts.items() for p in ps]


def upstream_scores(
    lens: Lens,
    dataset: Dataset,
    rows: Sequence[tuple[FeatureId, int]],
    method: UpstreamMethod = "attribution",
) -> list[dict[str, Tensor]]:
    """For each row (feature, prompt): site -> upstream scores `[d_sae + 1]` (features, then the
    error term) at every earlier site, and `"embed"` -> `[1]` (all token embeddings together)."""
    if not rows:
        return []
    tokens = dataset.tokens[[p for _, p in rows]].to(lens.device)
    mask = dataset.mask[[p for _, p in rows]].to(lens.device)
    target_sites = sorted({f.site for f, _ in rows})
    # Nothing after the targets' last block matters here: stop there (its sites have no leaves).
    stop = stop_layer(lens, target_sites)
    sites = [s for s in lens.sites if stop is None or lens.site_layer(s) < stop] + [EMBED_SITE]
    freeze = clean_freeze(lens, tokens) if method == "direct" else None
    gates: dict[str, Tensor] = {}
    if freeze is not None:
        with torch.no_grad():
            clean = lens.forward(tokens, RunPlan(record_pre=target_sites, stop_at_layer=stop))
        for site in target_sites:
            post, pre = clean.features[site], clean.pre_acts[site]
            gates[site] = torch.where(pre != 0, post / torch.where(pre != 0, pre, 1), 0)
    plan = RunPlan(
        leaf_sites=sites,
        keep_graph=True,
        freeze=freeze,
        record_pre=target_sites if freeze is not None else (),
        gradient_mode="straight_through" if freeze is not None else None,
        stop_at_layer=stop,
    )
    result = lens.forward(tokens, plan)
    values: list[Tensor] = []
    for r, (feature, _) in enumerate(rows):
        if freeze is not None:
            act = (
                result.pre_acts[feature.site][r, :, feature.index]
                * gates[feature.site][r, :, feature.index]
            )
        else:
            act = result.features[feature.site][r, :, feature.index]
        values.append((act * mask[r]).sum())
    leaves = [result.leaves[s] for s in sites]
    grads: list[Tensor | None] = list(
        torch.autograd.grad(torch.stack(values).sum(), leaves, allow_unused=True)
    )
    out: list[dict[str, Tensor]] = [{} for _ in rows]
    with torch.no_grad():
        for site, grad in zip(sites, grads, strict=True):
            if grad is None:
                continue
            if site == EMBED_SITE:
                assert result.embeddings is not None
                emb = (grad * result.embeddings.detach()).sum((1, 2))
                for r in range(len(rows)):
                    out[r][site] = emb[r : r + 1].cpu()
                continue
            acts = result.features[site].detach()  # [b, pos, d_sae]
            W_dec = lens.dictionary(site).W_dec
            feats = torch.einsum("bpd,fd->bpf", grad, W_dec) * acts
            feats = feats.sum(1)
            err = (grad * result.errors[site].detach()).sum((1, 2))
            order = lens.site_order(site)
            for r, (feature, _) in enumerate(rows):
                if order < lens.site_order(feature.site):
                    out[r][site] = torch.cat([feats[r], err[r : r + 1]]).cpu()
    return out


def downstream_scores(
    lens: Lens, dataset: Dataset, rows: Sequence[tuple[FeatureId, int]]
) -> list[dict[str, Tensor]]:
    """For each row (feature, prompt): later site -> change `[d_sae]` of each feature (summed over
    positions) when the feature is zeroed at every position, and `"logits"` -> `[d_vocab]`."""
    if not rows:
        return []
    # Only sites after a row's feature can change; the others are not encoded in the patched run
    # (their `add` edit applies to the activation as it is, which is what the splice outputs).
    first = min(lens.site_order(f.site) for f, _ in rows)
    later = [s for s in lens.sites if lens.site_order(s) > first]
    own = sorted({f.site for f, _ in rows})
    # Clean runs once per distinct prompt (features' top prompts overlap), kept only as sums over
    # positions, which is all the differences need: sum(clean - patched) = sum(clean) - sum(patched).
    prompts = sorted({p for _, p in rows})
    where = {p: i for i, p in enumerate(prompts)}
    tokens = dataset.tokens[[p for _, p in rows]].to(lens.device)
    mask = dataset.mask[[p for _, p in rows]].to(lens.device)
    with torch.no_grad():
        clean_tokens = dataset.tokens[prompts].to(lens.device)
        clean = lens.forward(clean_tokens, RunPlan(encode_sites=[*own, *later]))
        cm = dataset.mask[prompts].to(lens.device)[..., None].to(clean.logits.dtype)
        clean_logits = (clean.logits * cm).sum(1)
        clean_sums = {s: (clean.features[s] * cm).sum(1) for s in later}
        adds: dict[str, Tensor] = {}
        for r, (feature, prompt) in enumerate(rows):
            W_dec = lens.dictionary(feature.site).W_dec
            if feature.site not in adds:
                adds[feature.site] = torch.zeros(
                    *tokens.shape, W_dec.shape[1], dtype=W_dec.dtype, device=W_dec.device
                )
            act = clean.features[feature.site][where[prompt], :, feature.index]
            adds[feature.site][r] -= act[:, None] * W_dec[feature.index][None, :]
        patched = lens.forward(
            tokens,
            RunPlan(edits={s: SiteEdit(add=a) for s, a in adds.items()}, encode_sites=later),
        )
        index = torch.tensor([where[p] for _, p in rows], device=clean_logits.device)
        m = mask[..., None].to(clean.logits.dtype)
        logits = (clean_logits[index] - (patched.logits * m).sum(1)).cpu()
        change = {s: (clean_sums[s][index] - (patched.features[s] * m).sum(1)).cpu() for s in later}
    out: list[dict[str, Tensor]] = []
    for r, (feature, _) in enumerate(rows):
        order = lens.site_order(feature.site)
        row = {s: c[r] for s, c in change.items() if lens.site_order(s) > order}
        row["logits"] = logits[r]
        out.append(row)
    return out


def _mean(rows: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    keys = rows[0].keys() if rows else []
    return {k: torch.stack([r[k] for r in rows]).mean(0) for k in keys}


def neighbours(
    lens: Lens,
    dataset: Dataset,
    acts: dict[FeatureId, Tensor],
    *,
    method: UpstreamMethod = "attribution",
    n_prompts: int = 4,
    k: int = 12,
    batch_size: int = 32,
    progress: bool = False,
) -> dict[FeatureId, Neighbours]:
    """Upstream (attribution patching or direct) and downstream (exact) neighbours of each feature,
    averaged over its `n_prompts` top prompts (see the module docstring)."""
    prompts = {f: top_prompts(a, n_prompts) for f, a in acts.items()}
    rows = _rows(prompts)
    # Batches of rows sorted by prompt, so that rows sharing a prompt share its clean run.
    order = sorted(range(len(rows)), key=lambda i: rows[i][1])
    up: list[dict[str, Tensor]] = [{} for _ in rows]
    down: list[dict[str, Tensor]] = [{} for _ in rows]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in tqdm(chunks, desc="neighbours", disable=not progress, unit="batch"):
        batch = [rows[i] for i in chunk]
        scores = zip(
            upstream_scores(lens, dataset, batch, method),
            downstream_scores(lens, dataset, batch),
            strict=True,
        )
        for i, (u, d) in zip(chunk, scores, strict=True):
            up[i], down[i] = u, d
    vocab = (
        lens.model.to_str_tokens(torch.arange(int(lens.model.cfg.d_vocab)))
        if lens.model.tokenizer is not None
        else None
    )
    result: dict[FeatureId, Neighbours] = {}
    cursor = 0
    for feature, ps in prompts.items():
        n = len(ps)
        mean_up, mean_down = _mean(up[cursor : cursor + n]), _mean(down[cursor : cursor + n])
        cursor += n
        result[feature] = _links(feature, mean_up, mean_down, method, k, vocab)
        result[feature].prompts = ps
    return result


def _links(
    feature: FeatureId,
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
            candidates.append(Link("token", EMBED_SITE, None, float(scores[0]), method))
            continue
        feats, err = scores[:-1], float(scores[-1])
        total = float(feats.abs().sum()) + abs(err)
        share[site] = abs(err) / total if total > 0 else 0.0
        candidates.append(Link("error", site, None, err, method))
        top = torch.topk(feats.abs(), min(k, feats.numel())).indices
        candidates += [
            Link("feature", site, int(i), float(feats[i]), method) for i in top if feats[i] != 0
        ]
    upstream = sorted(candidates, key=lambda link: -abs(link.weight))[:k]
    downstream: list[Link] = []
    for site, scores in down.items():
        if site == "logits":
            continue
        top = torch.topk(scores.abs(), min(k, scores.numel())).indices
        downstream += [
            Link("feature", site, int(i), float(scores[i]), "exact") for i in top if scores[i] != 0
        ]
    downstream = sorted(downstream, key=lambda link: -abs(link.weight))[:k]
    logits: list[tuple[str, float]] = []
    if "logits" in down:
        change = down["logits"]
        for i in torch.topk(change.abs(), min(k, change.numel())).indices:
            name = vocab[int(i)] if vocab is not None else str(int(i))
            logits.append((name, float(change[i])))
    del feature
    return Neighbours(upstream, downstream, logits, share)
