"""circuit-tracer's output targets and graph scores, for graphs made with its conventions.

**Salient logits** (`salient_logits`): the most probable next tokens at the last position, most
probable first, up to the first whose cumulative probability reaches `desired_prob` (at most
`max_n`); each target is the demeaned logit `logit_t - mean(logits)` (its vector is the demeaned
unembedding `W_U[:, t] - mean_t' W_U[:, t']`), weighted by its probability. No corrupted prompt
is needed. `DemeanedLogit(t)` is that metric.

**Scores** (`graph_scores`), on a dense adjacency `A [n, n]` (row = target, column = source) over
feature, error, token and logit nodes, with weights `w` on the logit nodes (their probabilities):
`N = |A|` with each row divided by its sum (rows without inputs stay zero); the influence of every
node on the weighted logits is `I = w (N + N^2 + ...) = w ((1 - N)^-1 - 1)` (finite: the graph is
acyclic). Then
- replacement score = `I[tokens].sum() / (I[tokens].sum() + I[errors].sum())`: the share of the
  end-to-end influence of the input that does not pass through an error node first;
- completeness score = `sum_v (1 - N[v, errors].sum()) (I_v + w_v) / sum_v (I_v + w_v)`: the share
  of each node's inputs that come from features or tokens, weighted by the node's influence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.attribution.influence import influence_of_normalised
from feature_lens.errors import InputError
from feature_lens.lens.run import RunResult
from feature_lens.typed import int_list


@dataclass
class DemeanedLogit:
    """The demeaned logit of `token` at the last position, `logit_t - mean(logits)`, per prompt:
    circuit-tracer's logit node (its gradient is the demeaned unembedding of `token`)."""

    token: int
    name: str = "demeaned_logit"

    def __call__(
        self, result: RunResult, answers: Int[Tensor, "batch k"] | None
    ) -> Float[Tensor, " batch"]:
        last = result.logits[:, -1]
        return last[:, self.token] - last.mean(-1)


@dataclass
class SalientLogits:
    """Target tokens `[k]`, their probabilities `[k]`, and their demeaned unembeddings
    `[k, d_model]` (the vectors circuit-tracer injects at the final norm's output).

    Also a metric: the probability-weighted sum of the targets' demeaned logits at the last
    position, `sum_k p_k (logit_{t_k} - mean(logits))`, whose direct effects are the
    probability-weighted sum of circuit-tracer's logit rows; `attribute` also uses each target on
    its own (`metrics()`, weighted by `probabilities`) for influence, pruning and scores."""

    tokens: Int[Tensor, " n"]
    probabilities: Float[Tensor, " n"]
    vectors: Float[Tensor, "n d_model"]
    name: str = "salient_logits"

    def metrics(self) -> list[DemeanedLogit]:
        """One `DemeanedLogit` per target, in the same order."""
        return [DemeanedLogit(t) for t in int_list(self.tokens)]

    def __call__(self, result: RunResult, answers: Tensor | None) -> Tensor:
        last = result.logits[:, -1]
        demeaned = last[:, self.tokens.to(last.device)] - last.mean(-1, keepdim=True)
        return demeaned @ self.probabilities.to(last.device, last.dtype)


def salient_logits(
    logits: Float[Tensor, "*pos d_vocab"],
    unembed: Float[Tensor, "d_model d_vocab"],
    *,
    desired_prob: float = 0.95,
    max_n: int = 10,
) -> SalientLogits:
    """The most probable next tokens at the last position up to cumulative probability
    `desired_prob` (at most `max_n`). `logits`: `[pos, d_vocab]` or `[d_vocab]` (one prompt);
    `unembed`: `W_U [d_model, d_vocab]`."""
    if not 0 < desired_prob <= 1:
        raise InputError(f"desired_prob must be in (0, 1], got {desired_prob}")
    if max_n < 1:
        raise InputError(f"max_n must be >= 1, got {max_n}")
    last = logits[-1] if logits.ndim == 2 else logits
    probs = torch.softmax(last.double(), -1)
    top_p, top_idx = torch.topk(probs, min(max_n, probs.numel()))
    reached = torch.nonzero(torch.cumsum(top_p, 0) >= desired_prob)
    count = int(reached[0, 0]) + 1 if len(reached) else len(top_p)
    tokens = top_idx[:count]
    vectors = (unembed - unembed.mean(-1, keepdim=True))[:, tokens].T
    return SalientLogits(tokens, top_p[:count].to(last.dtype), vectors)


def _normalised(adjacency: Float[Tensor, "n n"]) -> Float[Tensor, "n n"]:
    magnitude = adjacency.abs()
    totals = magnitude.sum(1, keepdim=True)
    return torch.where(totals > 0, magnitude / torch.where(totals > 0, totals, 1), 0)


def node_influence(
    adjacency: Float[Tensor, "n n"], weights: Float[Tensor, " n"]
) -> Float[Tensor, " n"]:
    """`w ((1 - N)^-1 - 1)`: every node's total influence on the weighted targets through all
    paths, with `N` the row-normalised `|adjacency|` (rows target, columns source); summed as
    `w N + w N^2 + ...`, which ends for an acyclic graph (`influence.node_influence`)."""
    return influence_of_normalised(_normalised(adjacency.double()), weights)


def graph_scores(
    adjacency: Float[Tensor, "n n"], kinds: Sequence[str], logit_weights: Float[Tensor, " n"]
) -> tuple[float, float]:
    """(replacement score, completeness score) of a graph: `adjacency [n, n]` (row target, column
    source), `kinds[n]` ("feature", "error", "token" or "logit") and `logit_weights [n]` (each
    logit node's probability, 0 elsewhere). See the module docstring."""
    n = adjacency.shape[0]
    if adjacency.shape != (n, n) or len(kinds) != n or logit_weights.shape != (n,):
        raise InputError(
            f"graph_scores needs a square adjacency and one kind and weight per node; got "
            f"{tuple(adjacency.shape)}, {len(kinds)} kinds, {tuple(logit_weights.shape)} weights"
        )
    unknown = sorted(set(kinds) - {"feature", "error", "token", "logit"})
    if unknown:
        raise InputError(f"unknown node kinds {unknown}; use feature, error, token or logit")
    is_error = torch.tensor([k == "error" for k in kinds], device=adjacency.device)
    is_token = torch.tensor([k == "token" for k in kinds], device=adjacency.device)
    weights = logit_weights.double()
    normalised = _normalised(adjacency.double())
    influence = influence_of_normalised(normalised, weights)
    token_influence = float(influence[is_token].sum())
    error_influence = float(influence[is_error].sum())
    total = token_influence + error_influence
    replacement = token_influence / total if total > 0 else 0.0
    non_error = 1 - normalised[:, is_error].sum(-1)
    output = influence + weights
    completeness = float((non_error * output).sum() / output.sum())
    return replacement, completeness
