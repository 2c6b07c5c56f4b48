"""Logits at one position: a pass whose metric reads one position's logits computes them there
alone, and every number stays what the full `[batch, pos, d_vocab]` logits give."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import LogitDiff, PromptState
from feature_lens.attribution.exact import exact_node_effects
from feature_lens.attribution.metrics import CallableMetric, LogProb, at_one_position
from feature_lens.attribution.nodes import Node
from feature_lens.lens import RunPlan


def test_logits_at_positions_equal_the_full_logits(lens64: Lens, state64: PromptState) -> None:
    tokens = state64.tokens.expand(3, -1)
    full = lens64.forward(tokens, RunPlan()).logits
    for positions in ([6], [0, 3], [-1]):
        part = lens64.forward(tokens, RunPlan(logit_positions=positions)).logits
        assert part.shape == (3, len(positions), full.shape[-1])
        torch.testing.assert_close(part, full[:, positions], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="stop_at_layer"):
        lens64.forward(tokens, RunPlan(logit_positions=[0], stop_at_layer=1))


def test_which_metrics_read_one_position() -> None:
    narrowed = at_one_position(LogitDiff(pos=-1), 7)
    assert narrowed is not None
    assert narrowed[1] == 6
    assert isinstance(narrowed[0], LogitDiff)
    assert narrowed[0].pos == 0
    log_prob = at_one_position(LogProb(token=3, pos=2), 7)
    assert log_prob is not None
    assert log_prob[1] == 2
    assert at_one_position(LogitDiff(pos=7), 7) is None  # out of range: the full pass raises
    assert at_one_position(CallableMetric(lambda logits, answers: logits[:, -1, 0]), 7) is None


def test_exact_effects_unchanged_and_the_unembedding_sees_one_position(
    lens64: Lens, state64: PromptState
) -> None:
    """The same effects as a metric that reads the full logits (a `CallableMetric` computing the
    logit difference), to float64 rounding; the unembedding's input holds one position."""
    nodes = [
        Node("feature", site, pos, index)
        for site in lens64.sites
        for pos, index in ((6, 0), (3, 1), (6, 2))
    ]
    nodes += [Node("error", site, 6) for site in lens64.sites]
    answers = state64.answers
    assert answers is not None

    def full_logit_diff(logits: torch.Tensor, answers: Any) -> torch.Tensor:
        last = logits[:, -1]
        return last.gather(1, answers[:, :1]).squeeze(1) - last.gather(1, answers[:, 1:2]).squeeze(
            1
        )

    seen: list[int] = []
    hook = lens64.model.unembed.hook_in.register_forward_hook(
        lambda module, args, out: seen.append(int(out.shape[1]))
    )
    try:
        narrow = exact_node_effects(lens64, state64, LogitDiff(), nodes, batch_size=5)
    finally:
        hook.remove()
    full = exact_node_effects(lens64, state64, CallableMetric(full_logit_diff), nodes, batch_size=5)
    assert seen
    assert set(seen) == {1}
    assert narrow.keys() == full.keys()
    for node, value in full.items():
        assert narrow[node] == pytest.approx(value, abs=1e-12)
    assert max(abs(v) for v in full.values()) > 1e-3  # the effects are not all zero
