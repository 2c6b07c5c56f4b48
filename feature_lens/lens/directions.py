"""Arbitrary directions as features: steering vectors, probe weights, decoder rows, any tensor.

A `Directions` object is a dictionary whose k "features" are vectors v_1..v_k at one hook:

- **activation** of direction j: the projection `x . v_j / |v_j|` — the length of x along v_j, in the
  activation's own units (with `normalize=False`: `x . v_j`, for a vector whose scale matters);
- **decoder** row j: the unit vector `v_j / |v_j|` (or `v_j` unnormalised), so moving direction j's
  activation by d adds `d * v_hat_j` to the stream: intervening adds or removes a multiple of the
  direction;
- there is no nonlinearity (the gate is 1), and the error term `x - sum_j a_j v_hat_j` keeps the
  splice exact as for any dictionary.

Because it is a dictionary with an affine decoder, directions take part in activation patching,
attribution patching and direct attribution as upstream and downstream nodes, and get dashboard
pages, with no special cases. Give it a `name` to attach it at a hook that already has an SAE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.errors import InputError
from feature_lens.lens.dictionary import Dictionary, hook_layer


class Directions(Dictionary):
    """k directions at `hook` as features (see the module docstring).

    Args:
        vectors: `[k, d]` (or `[d]` for one direction).
        hook: the TransformerLens hook they live at, e.g. `blocks.1.hook_resid_post`.
        labels: a name per direction (shown in dashboards).
        name: the site name (default `"<hook>:directions"`).
        normalize: divide each vector by its norm (activation = scalar projection).
    """

    def __init__(
        self,
        vectors: Float[Tensor, "k d"] | Float[Tensor, " d"],
        hook: str,
        *,
        labels: Sequence[str] | None = None,
        name: str | None = None,
        normalize: bool = True,
    ) -> None:
        matrix = vectors.detach().clone()
        if matrix.ndim == 1:
            matrix = matrix.unsqueeze(0)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise InputError(
                f"directions must be a [k, d] tensor, got shape {tuple(vectors.shape)}"
            )
        norms = matrix.norm(dim=-1, keepdim=True)
        if not torch.all(norms > 0):
            raise InputError("a direction has zero norm; every vector must be non-zero")
        self.vectors: Tensor = matrix / norms if normalize else matrix
        self.normalize = normalize
        self.labels: list[str] = (
            list(labels) if labels is not None else [f"direction {j}" for j in range(len(matrix))]
        )
        if len(self.labels) != len(matrix):
            raise InputError(f"{len(self.labels)} labels for {len(matrix)} directions")
        self.sae = None
        self.is_transcoder = False
        self.hook_in = hook
        self.hook_out = hook
        self.name = name or f"{hook}:directions"

    @property
    def layer(self) -> int:
        """Block index of the hook."""
        return hook_layer(self.hook_out)

    @property
    def kind(self) -> str:
        """Always "directions"."""
        return "directions"

    @property
    def d_in(self) -> int:
        """Width of the hook's activation."""
        return int(self.vectors.shape[1])

    @property
    def d_out(self) -> int:
        """Same as `d_in`."""
        return self.d_in

    @property
    def d_sae(self) -> int:
        """Number of directions."""
        return int(self.vectors.shape[0])

    @property
    def model_name(self) -> str | None:
        """Directions are not tied to a model name."""
        return None

    @property
    def W_dec(self) -> Float[Tensor, "k d"]:
        """The (unit) direction vectors."""
        return self.vectors

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Directions:
        """Move the vectors (returns self)."""
        self.vectors = self.vectors.to(device=device, dtype=dtype)
        return self

    def encode(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... k"]:
        """Projections onto the directions."""
        return x @ self.vectors.to(x.dtype).T

    def encode_with_pre(self, x: Float[Tensor, "... d"]) -> tuple[Tensor, Tensor]:
        """(activation, pre-activation): equal, there is no nonlinearity."""
        acts = self.encode(x)
        return acts, acts

    def decode(self, f: Float[Tensor, "... k"]) -> Float[Tensor, "... d"]:
        """Sum of activation times direction."""
        return f @ self.vectors.to(f.dtype)

    def check_affine(self, rtol: float | None = None) -> None:
        """Always affine (linear)."""

    def pre_affine(self) -> tuple[Tensor, Tensor]:
        """`(vectors.T, 0)`: the projection is linear."""
        return self.vectors.T, torch.zeros(self.d_sae, dtype=self.vectors.dtype)

    def __repr__(self) -> str:
        return f"Directions({self.d_sae} at {self.hook_out}: {', '.join(self.labels[:3])}{'...' if self.d_sae > 3 else ''})"

    # ------------------------------------------------------------------------ builders
    @classmethod
    def from_mean_difference(
        cls,
        lens: Any,
        hook: str,
        positive: Any,
        negative: Any,
        *,
        position: int | None = -1,
        label: str = "steering vector",
        name: str | None = None,
    ) -> Directions:
        """The difference of mean activations at `hook` between two prompt sets (at `position`,
        or averaged over every position when None): the usual steering vector, in one call."""
        means = []
        for prompts in (positive, negative):
            tokens = lens.to_tokens(prompts) if not isinstance(prompts, Tensor) else prompts
            if tokens.shape[0] == 0:
                raise InputError("each prompt set needs at least one prompt")
            _, cache = lens.model.run_with_cache(tokens, names_filter=lambda n: n == hook)
            if hook not in cache:
                raise InputError(f"the model has no hook {hook!r}")
            acts = cache[hook]
            means.append((acts[:, position] if position is not None else acts.mean(1)).mean(0))
        return cls(means[0] - means[1], hook, labels=[label], name=name)

    @classmethod
    def from_decoder(
        cls, lens: Any, site: str, indices: Sequence[int], *, normalize: bool = True
    ) -> Directions:
        """Decoder rows of the dictionary at `site` as directions at its output hook."""
        dictionary = lens.dictionary(site)
        for index in indices:
            if not 0 <= index < dictionary.d_sae:
                raise InputError(
                    f"feature index {index} out of range [0, {dictionary.d_sae}) at {site!r}"
                )
        rows = dictionary.W_dec[list(indices)].detach()
        return cls(
            rows,
            dictionary.hook_out,
            labels=[f"{site} #{i}" for i in indices],
            name=f"{site}:decoder",
            normalize=normalize,
        )
