"""Cross-layer transcoders (CLTs): one encoder per layer, decoders into that layer and every later one.

A CLT over layers 0..L-1 (circuit-tracer's `CrossLayerTranscoder`) has, for each layer l, an
encoder reading `blocks.l.<input hook>` (the MLP's normalised input),
    f_l = act(x_l @ W_enc[l] + b_enc[l])        act: ReLU, or JumpReLU `pre * (pre > threshold)`
and decoders `W_dec[l][:, k - l]` into the output hook of every layer k >= l (the MLP's output).
The reconstruction of layer k's output sums what every earlier-or-equal layer's features write:
    x_hat_k = b_dec[k] + sum_{l <= k} f_l @ W_{l->k}
and the spliced model writes `x_hat_k + err_k` with `err_k = mlp_out_k - x_hat_k`, an identity.

In a Lens, a CLT is one site per layer (`CrossLayerSite`, a `Dictionary`): the site of layer l
holds the features whose *encoder* is at layer l and the error term of layer l's output. A feature
node (site of layer l, pos, i) is one node whose writes are several: `writes()` lists
`(site of layer k, W_{l->k})` for k >= l. Patching it by `d` adds `d * W_{l->k}[i]` at every
layer k >= l; its gradient is `sum_k W_{l->k}[i] . d(metric)/d(out_k)`.

The splice hooks of one CLT share the features encoded so far in the forward pass (`CrossLayerRun`),
so an edit of layer l's features (patching, integrated gradients, interventions) moves every
later layer's output. Hooks of blocks that do not run (a block-local pass started later) record
no features: such passes read gradients only, never the error terms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.errors import IncompatibleDictionaryError
from feature_lens.lens.dictionary import Dictionary
from feature_lens.lens.run import GradientMode, RunPlan, RunResult, finish_splice


class CrossLayerTranscoder:
    """The weights of a CLT (layers 0..L-1 of the model), in the orientation used here.

    Args:
        W_enc: per layer `[d_in, d_sae]` (so `pre = x @ W_enc[l] + b_enc[l]`).
        b_enc: `[L, d_sae]`.
        W_dec: per layer l, `[d_sae, L - l, d_out]`: column `k - l` is the decoder into layer k.
        b_dec: `[L, d_out]`.
        threshold: `[L, d_sae]` JumpReLU thresholds, or None for ReLU.
        hooks_in / hooks_out: per layer, the hook each layer's encoder reads and its output hook.
        model_name: the model it was trained on, if known.
    """

    def __init__(
        self,
        *,
        W_enc: Sequence[Tensor],
        b_enc: Tensor,
        W_dec: Sequence[Tensor],
        b_dec: Tensor,
        threshold: Tensor | None,
        hooks_in: Sequence[str],
        hooks_out: Sequence[str],
        model_name: str | None = None,
    ) -> None:
        self.W_enc = list(W_enc)
        self.b_enc = b_enc
        self.W_dec = list(W_dec)
        self.b_dec = b_dec
        self.threshold = threshold
        self.hooks_in = list(hooks_in)
        self.hooks_out = list(hooks_out)
        self.model_name = model_name
        self._totals: dict[int, Tensor] = {}

    @property
    def n_layers(self) -> int:
        """Number of layers (encoders)."""
        return len(self.W_enc)

    def tensors(self) -> dict[str, Tensor]:
        """Every weight by name (for finiteness checks and cache keys)."""
        named = {f"W_enc_{i}": w for i, w in enumerate(self.W_enc)}
        named |= {f"W_dec_{i}": w for i, w in enumerate(self.W_dec)}
        named |= {"b_enc": self.b_enc, "b_dec": self.b_dec}
        if self.threshold is not None:
            named["threshold"] = self.threshold
        return named

    def total_write(self, layer: int) -> Tensor:
        """`[d_sae, d_out]`: `sum_k W_{layer->k}`, what a feature adds to the residual stream in
        all (computed once per layer)."""
        if layer not in self._totals:
            self._totals[layer] = self.W_dec[layer].sum(dim=1)
        return self._totals[layer]

    def sites(self) -> list[CrossLayerSite]:
        """One `CrossLayerSite` per layer, to attach to a Lens together."""
        return [CrossLayerSite(self, layer) for layer in range(self.n_layers)]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Any:
        """Move every weight (returns self)."""
        self._totals = {}
        self.W_enc = [w.to(device=device, dtype=dtype) for w in self.W_enc]
        self.W_dec = [w.to(device=device, dtype=dtype) for w in self.W_dec]
        self.b_enc = self.b_enc.to(device=device, dtype=dtype)
        self.b_dec = self.b_dec.to(device=device, dtype=dtype)
        if self.threshold is not None:
            self.threshold = self.threshold.to(device=device, dtype=dtype)
        return self


class CrossLayerSite(Dictionary):
    """Layer `layer` of a CLT as a Lens site: its encoder's features and its output's error term.

    Its features write into several sites (`writes`); `W_dec` is their total write into the
    residual stream `sum_k W_{l->k}` (every output hook adds to the stream), which is what the
    dashboards' logit tables and decoder similarities read.
    """

    def __init__(self, clt: CrossLayerTranscoder, layer: int) -> None:
        self.clt = clt
        self.clt_layer = layer
        self.sae = None
        self.is_transcoder = True
        self.hook_in = clt.hooks_in[layer]
        self.hook_out = clt.hooks_out[layer]
        self.name = None

    @property
    def kind(self) -> str:
        """Always "cross_layer_transcoder"."""
        return "cross_layer_transcoder"

    @property
    def d_in(self) -> int:
        """Width of the encoder's input."""
        return int(self.clt.W_enc[self.clt_layer].shape[0])

    @property
    def d_out(self) -> int:
        """Width of each output."""
        return int(self.clt.b_dec.shape[1])

    @property
    def d_sae(self) -> int:
        """Number of features per layer."""
        return int(self.clt.b_enc.shape[1])

    @property
    def model_name(self) -> str | None:
        """The model the CLT was trained on, if its config says."""
        return self.clt.model_name

    def writes(self) -> list[tuple[str, Tensor]]:
        """`(site, W [d_sae, d_out])` for every layer k >= this one: feature i adds `f_i * W[i]`
        to layer k's output."""
        w_dec = self.clt.W_dec[self.clt_layer]
        return [
            (self.clt.hooks_out[self.clt_layer + j], w_dec[:, j]) for j in range(w_dec.shape[1])
        ]

    @property
    def W_dec(self) -> Float[Tensor, "d_sae d_out"]:
        """The total write into the residual stream, `sum_k W_{l->k}` (see the class doc)."""
        return self.clt.total_write(self.clt_layer)

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations: ReLU, or JumpReLU `pre * (pre > threshold)` (circuit-tracer's)."""
        return self.encode_with_pre(x)[0]

    def encode_with_pre(self, x: Float[Tensor, "... d_in"]) -> tuple[Tensor, Tensor]:
        """(activations, pre-activations `x @ W_enc + b_enc`)."""
        w_enc = self.clt.W_enc[self.clt_layer]
        pre = x.to(w_enc.dtype) @ w_enc + self.clt.b_enc[self.clt_layer]
        threshold = self.clt.threshold
        if threshold is None:
            return torch.relu(pre), pre
        return pre * (pre > threshold[self.clt_layer]).to(pre.dtype), pre

    def pre_affine(self) -> tuple[Tensor, Tensor]:
        """`(W_enc[l], b_enc[l])`: the pre-activation is affine in the input."""
        return self.clt.W_enc[self.clt_layer], self.clt.b_enc[self.clt_layer]

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_out"]:
        """What this layer's features write into this layer's own output, plus its decoder bias
        (the layer's reconstruction also sums earlier layers' writes; see `CrossLayerRun`)."""
        return f @ self.clt.W_dec[self.clt_layer][:, 0] + self.clt.b_dec[self.clt_layer]

    def check_affine(self, rtol: float | None = None) -> None:
        """Decoders are linear by construction; refuse non-finite weights."""
        for name, tensor in self.clt.tensors().items():
            if not bool(torch.isfinite(tensor).all()):
                raise IncompatibleDictionaryError(
                    f"the cross-layer transcoder has non-finite weights (NaN or inf) in {name!r}; "
                    "load an undamaged copy"
                )

    def __repr__(self) -> str:
        return (
            f"CrossLayerSite(layer {self.clt_layer} of {self.clt.n_layers}, "
            f"{self.hook_in} -> {self.hook_out} and later, d_sae={self.d_sae})"
        )


def check_complete(dictionaries: Sequence[Dictionary]) -> None:
    """Refuse a cross-layer transcoder attached without all of its layers: its features write
    into every later layer, and each layer's reconstruction needs every earlier layer's."""
    attached: dict[int, tuple[CrossLayerTranscoder, set[int]]] = {}
    for dictionary in dictionaries:
        if isinstance(dictionary, CrossLayerSite):
            entry = attached.setdefault(id(dictionary.clt), (dictionary.clt, set()))
            entry[1].add(dictionary.clt_layer)
    for clt, layers in attached.values():
        missing = sorted(set(range(clt.n_layers)) - layers)
        if missing:
            raise IncompatibleDictionaryError(
                f"a cross-layer transcoder over {clt.n_layers} layers is attached without layers "
                f"{missing}; attach all of its sites (clt.sites(), or load_sae(folder))"
            )


def feature_writes(dictionary: Dictionary) -> list[tuple[str, Tensor]]:
    """Where a dictionary's features write: `(site, W [d_sae, d_out])` pairs, several for a
    cross-layer transcoder's layer, else the dictionary's own site and `W_dec`."""
    if isinstance(dictionary, CrossLayerSite):
        return dictionary.writes()
    return [(dictionary.site, dictionary.W_dec)]


@dataclass
class CrossLayerRun:
    """One forward pass's features of one CLT, by layer: as encoded, and the change an edit made
    (where it changed them), each with the features that are non-zero somewhere in the batch."""

    features: dict[int, tuple[Tensor, Tensor | None]] = field(
        default_factory=dict[int, tuple[Tensor, Tensor | None]]
    )
    changes: dict[int, tuple[Tensor, Tensor | None]] = field(
        default_factory=dict[int, tuple[Tensor, Tensor | None]]
    )


def _with_support(f: Tensor, *, sparse_grad: bool) -> tuple[Tensor, Tensor | None]:
    """`(f, indices of the entries non-zero at some batch row and position)`; no indices (use
    all) when `f` carries a gradient that its zero entries may not share (`sparse_grad=False`)."""
    if f.requires_grad and not sparse_grad:
        return f, None
    return f, torch.nonzero((f != 0).reshape(-1, f.shape[-1]).any(0)).reshape(-1)


def _sparse_write(entry: tuple[Tensor, Tensor | None], weight: Tensor) -> Tensor:
    """`f @ weight` through the non-zero entries only (the same value, and the same gradient where
    `_with_support` allowed it), dense when most entries are non-zero."""
    f, support = entry
    if support is None or 2 * support.numel() > f.shape[-1]:
        return f @ weight
    return f[..., support] @ weight[support]


def cross_layer_splice_hook(
    site: str,
    dictionary: CrossLayerSite,
    plan: RunPlan,
    mode: GradientMode,
    inputs: dict[str, Tensor],
    result: RunResult,
    shared: CrossLayerRun,
) -> Callable[..., Tensor]:
    """The splice at layer k's output: `x_hat_k` from every layer l <= k encoded in this pass,
    edits of earlier layers' features carried into this output (see the module doc)."""
    edit = plan.edits.get(site)
    want_pre = site in plan.record_pre
    want_leaf = site in plan.leaf_sites
    k = dictionary.clt_layer
    clt = dictionary.clt

    def hook(act: Tensor, hook: Any) -> Tensor:
        x_in = inputs.pop(site)
        f, pre = dictionary.encode_with_pre(x_in)
        if want_pre:
            result.pre_acts[site] = pre
        # A feature that is zero has zero gradient (ReLU, JumpReLU): its row can be skipped.
        shared.features[k] = _with_support(f, sparse_grad=True)
        if edit is not None and edit.features is not None:
            f_new = edit.features(f)
            if f_new is not f:
                shared.changes[k] = _with_support(f_new - f, sparse_grad=False)
        x_hat = clt.b_dec[k].to(f.dtype)
        change: Tensor | None = None
        for layer, entry in shared.features.items():
            if layer > k:
                continue
            w = clt.W_dec[layer][:, k - layer]
            x_hat = x_hat + _sparse_write(entry, w)
            if layer in shared.changes:
                moved = _sparse_write(shared.changes[layer], w)
                change = moved if change is None else change + moved
        err = act - x_hat
        err_new = edit.error(err) if edit is not None and edit.error is not None else err
        if not plan.error_term:
            out = x_hat if change is None else x_hat + change
        elif mode == "straight_through":
            out = act if change is None else act + change
            if err_new is not err:
                out = out + (err_new - err)
        else:
            new_hat = x_hat if change is None else x_hat + change
            out = new_hat + err_new.detach()
        return finish_splice(out, site, f, err, edit, plan, result, want_leaf=want_leaf)

    return hook
