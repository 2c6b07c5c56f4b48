"""Edge targets: a downstream feature's value as a function of its dictionary's input, for one site.

Every edge method differentiates (or patches) a target feature d at site S. A target is never read
from a dense encode `[rows, pos, d_sae]`: its pre-activation needs one encoder column,
    pre_d(x) = x[p_d] . J[:, d] + c[d]          (`Dictionary.pre_affine`: J = W_enc, c = pre(0))
and the target is
    t_d(x) = gate_d * pre_d(x),                 gate_d = post_clean / pre_clean (`frozen_gate`)
- for direct attribution this *is* the definition (the target's activation function is frozen);
- for total attribution (gradients at the clean point), d t_d / d x = gate_d * J[:, d] equals the
  derivative of the activation itself for every activation function that is linear on each piece
  (ReLU, JumpReLU, TopK, gated: what SAE-Lens dictionaries with an affine decoder use), so the
  same target gives the activation's gradient.
An all-positions target sums t_d over positions. The gates and columns are gathered once per site
and prompt: work and memory scale with the number of targets, not with d_sae.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.attribution.nodes import Node
from feature_lens.attribution.state import PromptState, clean_inputs
from feature_lens.lens import Lens, frozen_gate


@dataclass
class FeatureTargets:
    """The targets of one site: encoder columns, biases, clean gates and positions.

    Attributes:
        site: the dictionary's site.
        columns: `[d_in, T]`, J[:, d] per target.
        bias: `[T]`, c[d].
        gate: `[pos, T]`, the clean gate of each target at every position.
        mask: `[pos, T]`, 1 at the target's own position (every position for all-position nodes).
    """

    site: str
    columns: Float[Tensor, "d_in T"]
    bias: Float[Tensor, " T"]
    gate: Float[Tensor, "pos T"]
    mask: Float[Tensor, "pos T"]

    def values(self, x_in: Float[Tensor, "pos d_in"]) -> Float[Tensor, " T"]:
        """t_d for each target from the site's input of one run (keeps the autograd graph); a
        run over a prefix of the prompt (`x_in` shorter than `pos`) sums over the prefix."""
        n = x_in.shape[0]
        pre = x_in @ self.columns.to(x_in.dtype) + self.bias.to(x_in.dtype)  # [n, T]
        return (pre * (self.gate[:n] * self.mask[:n]).to(pre.dtype)).sum(0)

    def row_values(self, x_in: Float[Tensor, "T pos d_in"]) -> Float[Tensor, " T"]:
        """t_d of target r from row r of a batched run's site input (see `values`)."""
        n = x_in.shape[1]
        pre = torch.einsum("tpd,dt->tp", x_in, self.columns.to(x_in.dtype))
        pre = pre + self.bias.to(x_in.dtype)[:, None]
        return (pre * (self.gate[:n] * self.mask[:n]).T.to(pre.dtype)).sum(1)


def feature_targets(
    lens: Lens,
    state: PromptState,
    site: str,
    targets: Sequence[Node],
    rows: Sequence[int] | None = None,
) -> FeatureTargets:
    """Gather what `FeatureTargets.values` needs for `targets` (feature nodes at `site`) on a
    state of one prompt, or, with `rows`, what `row_values` needs with target j read on the
    state's prompt `rows[j]` (its gate is that prompt's)."""
    dictionary = lens.dictionary(site)
    jacobian, bias = dictionary.pre_affine()
    device = state.tokens.device
    index = torch.tensor([d.index for d in targets], dtype=torch.long, device=device)
    columns = jacobian[:, index]
    bias_t = bias[index]
    gates = clean_gates(lens, state, site)  # [batch, pos, d_sae]
    if rows is None:
        gate = gates[0][:, index].to(columns.dtype)  # [pos, T]
    else:
        at_rows = torch.tensor(list(rows), dtype=torch.long, device=device)
        gate = gates[at_rows, :, index].T.to(columns.dtype)  # [pos, T]
    n_pos = state.tokens.shape[1]
    positions = torch.tensor(
        [-1 if d.pos is None else d.pos % n_pos for d in targets], device=device
    )
    at = torch.arange(n_pos, device=device)
    mask = ((at[:, None] == positions[None, :]) | (positions[None, :] < 0)).to(gate.dtype)
    return FeatureTargets(site, columns, bias_t, gate, mask)


def clean_gates(lens: Lens, state: PromptState, site: str) -> Float[Tensor, "batch pos d_sae"]:
    """post / pre of every feature at `site` on the clean prompts, cached on the state: one encode
    of the prompt by the dictionary's own encoder (no model forward). Its own pre-activation keeps
    the ratio exact (1 for an active ReLU feature) where a pre-activation recomputed from a column
    would lose digits when it is small."""
    if site not in state.gates:
        with torch.no_grad():
            post, pre = lens.dictionary(site).encode_with_pre(clean_inputs(lens, state)[site])
        state.gates[site] = frozen_gate(post, pre)
    return state.gates[site]
