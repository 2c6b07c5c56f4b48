"""A dictionary (SAE or transcoder) attached to a model at hook points.

An SAE reads and writes the same hook: it encodes the activation `x` into features `f` and decodes
them into a reconstruction `x_hat = f @ W_dec + b_dec`. A transcoder reads one hook (`hook_in`, e.g.
the MLP's normalised input) and reconstructs another (`hook_out`, the MLP's output). Either way the
spliced model writes `x_hat + err` at `hook_out`, where `err = x_out - x_hat` is the error term.

feature-lens relies on the decoder being affine (`decode(f) = f @ W_dec + b_dec`): patching feature
i by `d` then moves the output by exactly `d * W_dec[i]`. This holds for every SAE-Lens architecture
whose activations are not normalised at run time; others are refused with a clear error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from feature_lens.errors import IncompatibleDictionaryError

_LAYER = re.compile(r"^blocks\.(\d+)\.")
_AFFINE_NORMALISATIONS = ("none", "expected_average_only_in")


def hook_layer(hook_name: str) -> int:
    """The block index in a TransformerLens hook name (`blocks.3.hook_resid_post` -> 3); -1 before
    the first block (embeddings), and a large number after the last (`ln_final`, unembed)."""
    match = _LAYER.match(hook_name)
    if match:
        return int(match.group(1))
    return -1 if hook_name.startswith("hook_") else 10**6


def stop_layer_for(hooks: Iterable[str], n_layers: int) -> int | None:
    """How many blocks must run for every hook in `hooks` to fire (TransformerLens's
    `stop_at_layer`: stop after the last block that holds one), or None when the whole model must
    (a hook after the last block). The one place the rule "stop after the last target's block"
    lives (`Lens.stop_layer` applies it to dictionaries' hooks)."""
    last = max((hook_layer(hook) for hook in hooks), default=-1)
    return last + 1 if 0 <= last < n_layers else None


def _infer_hook_out(hook_in: str) -> str | None:
    match = _LAYER.match(hook_in)
    if match and (hook_in.endswith(("ln2.hook_normalized", "hook_mlp_in"))):
        return f"blocks.{match.group(1)}.hook_mlp_out"
    return None


class Dictionary:
    """An SAE-Lens SAE or transcoder with the hook points it reads and writes.

    Args:
        sae: an `sae_lens.SAE` (any architecture with an affine decoder) or `sae_lens.Transcoder`.
        hook_in: where it reads; default `sae.cfg.metadata.hook_name`.
        hook_out: where it writes; default `hook_in` for SAEs, the config's `hook_name_out` for
            transcoders (or the MLP output of the input's block).
        name: the site's name in a Lens; default `hook_out`. Give one to attach two dictionaries
            at the same hook (e.g. an SAE and a set of directions).
    """

    W_skip: Tensor | None = None
    """A skip transcoder's skip weights `[d_out, d_in]` (None otherwise; subclasses without a
    skip connection inherit this default)."""

    def __init__(
        self,
        sae: Any,
        *,
        hook_in: str | None = None,
        hook_out: str | None = None,
        name: str | None = None,
    ) -> None:
        from sae_lens import Transcoder

        cfg = sae.cfg
        metadata = cfg.metadata
        hook_in = hook_in or metadata.hook_name
        if not hook_in:
            raise IncompatibleDictionaryError(
                "the SAE's config names no hook (cfg.metadata.hook_name is empty); pass hook_in="
                "'blocks.L.hook_resid_post' (or wherever it was trained)"
            )
        self.is_transcoder = isinstance(sae, Transcoder)
        skip = getattr(sae, "W_skip", None)
        self.W_skip = skip if isinstance(skip, Tensor) else None
        if self.is_transcoder:
            hook_out = hook_out or metadata.get("hook_name_out") or _infer_hook_out(hook_in)
            if hook_out is None:
                raise IncompatibleDictionaryError(
                    f"transcoder reading {hook_in!r} does not say where it writes; pass "
                    "hook_out='blocks.L.hook_mlp_out'"
                )
        else:
            hook_out = hook_out or hook_in
        if cfg.normalize_activations not in _AFFINE_NORMALISATIONS:
            raise IncompatibleDictionaryError(
                f"SAE at {hook_in!r} normalises activations at run time "
                f"(normalize_activations={cfg.normalize_activations!r}), so its decoder is not "
                "affine; fold the normalisation into the weights first"
            )
        if cfg.reshape_activations != "none":
            raise IncompatibleDictionaryError(
                f"SAE at {hook_in!r} reshapes activations ({cfg.reshape_activations!r}, per-head "
                "hook_z); attach attention SAEs at blocks.L.hook_attn_out instead"
            )
        self.sae = sae
        self.hook_in: str = hook_in
        self.hook_out: str = hook_out
        self.name: str | None = name

    @property
    def site(self) -> str:
        """The site's name: `name` if given, else the hook it writes (where the splice happens)."""
        return self.name or self.hook_out

    @property
    def layer(self) -> int:
        """Block index of the site (see `hook_layer`)."""
        return hook_layer(self.hook_out)

    @property
    def kind(self) -> str:
        """ "transcoder", "skip_transcoder" or "sae"."""
        if self.is_transcoder:
            return "skip_transcoder" if self.W_skip is not None else "transcoder"
        return "sae"

    @property
    def d_in(self) -> int:
        """Width of the input activation."""
        return int(self.sae.cfg.d_in)

    @property
    def d_out(self) -> int:
        """Width of the reconstructed activation (`d_in` for SAEs)."""
        return int(self.sae.W_dec.shape[1])

    @property
    def d_sae(self) -> int:
        """Number of features."""
        return int(self.sae.cfg.d_sae)

    @property
    def model_name(self) -> str | None:
        """The model the dictionary was trained on, if its config says."""
        name = self.sae.cfg.metadata.get("model_name")
        return str(name) if name else None

    @property
    def W_dec(self) -> Float[Tensor, "d_sae d_out"]:
        """The effective decoder: feature i writes `f_i * W_dec[i]`, i.e. `decode(f) = f @ W_dec +
        b_dec` exactly. SAE-Lens's `rescale_acts_by_decoder_norm` (top-k SAEs) decodes with
        `f_i / |W_dec[i]|`, so the effective rows are then the unit-normalised ones."""
        weight = self.sae.W_dec
        if getattr(self.sae.cfg, "rescale_acts_by_decoder_norm", False):
            return weight / weight.norm(dim=-1, keepdim=True)
        return weight

    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Feature activations (the SAE's own `encode`)."""
        return self.sae.encode(x)

    def encode_with_pre(
        self, x: Float[Tensor, "... d_in"]
    ) -> tuple[Float[Tensor, "... d_sae"], Float[Tensor, "... d_sae"]]:
        """Feature activations and their pre-activations (the input to the activation function:
        the magnitude path for gated SAEs), read from the SAE's `hook_sae_acts_pre`."""
        captured: list[Tensor] = []

        def capture(_module: Any, _inputs: Any, output: Tensor) -> None:
            captured.append(output)

        handle = self.sae.hook_sae_acts_pre.register_forward_hook(capture)
        try:
            acts = self.sae.encode(x)
        finally:
            handle.remove()
        return acts, captured[-1]

    def pre_jacobian(self) -> Float[Tensor, "d_in d_sae"]:
        """d(pre-activation)/d(input): constant, since pre-activations are affine in the input
        (`(x - b_dec) @ W_enc + b_enc`, the magnitude path for gated SAEs). See `pre_affine`."""
        return self.pre_affine()[0]

    def pre_affine(self) -> tuple[Float[Tensor, "d_in d_sae"], Float[Tensor, " d_sae"]]:
        """`(J, c)` with `pre(x) = x @ J + c` for the dictionary's own encoder, so one feature's
        pre-activation needs one column of `J`, never a dense encode. `c = pre(0)`; `J` is the
        SAE's `W_enc` (or, for gated SAEs, the magnitude path's `W_enc * exp(r_mag)`) after
        checking it against the encoder on random inputs, else `pre(I) - pre(0)`. Cached."""
        cached: tuple[Tensor, Tensor] | None = getattr(self, "_pre_affine", None)
        if cached is None:
            with torch.no_grad():
                weight = self.W_dec
                zero = torch.zeros(1, self.d_in, dtype=weight.dtype, device=weight.device)
                bias = self.encode_with_pre(zero)[1].reshape(-1)
                jacobian = self._checked_encoder(bias)
                if jacobian is None:
                    eye = torch.eye(self.d_in, dtype=weight.dtype, device=weight.device)
                    jacobian = self.encode_with_pre(eye)[1] - bias
            cached = (jacobian, bias)
            self._pre_affine: tuple[Tensor, Tensor] | None = cached
        return cached

    def _checked_encoder(self, bias: Tensor) -> Tensor | None:
        """The stored encoder matrix if it reproduces the pre-activations on random inputs."""
        encoder = getattr(self.sae, "W_enc", None)
        if not isinstance(encoder, Tensor) or encoder.shape != (self.d_in, self.d_sae):
            return None
        candidates = [encoder.detach()]
        r_mag = getattr(self.sae, "r_mag", None)
        if isinstance(r_mag, Tensor):
            candidates.insert(0, encoder.detach() * r_mag.detach().exp())
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(3, self.d_in, generator=generator).to(bias.device, bias.dtype)
        pre = self.encode_with_pre(x)[1] - bias
        tol = 1e-9 if bias.dtype == torch.float64 else 1e-3
        for candidate in candidates:
            expected = x @ candidate
            scale = max(1.0, float(expected.abs().max()))
            if torch.allclose(pre, expected, atol=tol * scale, rtol=0):
                return candidate
        return None

    def decode(self, f: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_out"]:
        """The decoder's output `f @ W_dec + b_dec` (the SAE's own `decode`); a skip
        transcoder's reconstruction adds `skip(x_in)` to it."""
        return self.sae.decode(f)

    @property
    def has_skip(self) -> bool:
        """Whether the dictionary is a skip transcoder (arXiv 2501.18823): its reconstruction is
        `decode(encode(x_in)) + x_in @ W_skip.T`, the skip term being a linear path from input to
        output that no feature mediates."""
        return self.W_skip is not None

    def skip(self, x_in: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_out"]:
        """The skip connection's contribution `x_in @ W_skip.T` (zero without one)."""
        if self.W_skip is None:
            return torch.zeros((*x_in.shape[:-1], self.d_out), dtype=x_in.dtype, device=x_in.device)
        return x_in.to(self.W_skip.dtype) @ self.W_skip.T

    def reconstruct(
        self, x_in: Float[Tensor, "... d_in"], f: Float[Tensor, "... d_sae"]
    ) -> Float[Tensor, "... d_out"]:
        """The dictionary's reconstruction of its output from input `x_in` with features `f`:
        `decode(f)`, plus `skip(x_in)` for a skip transcoder. The error term is the activation
        minus this."""
        out = self.decode(f)
        return out + self.skip(x_in) if self.W_skip is not None else out

    def check_affine(self, rtol: float | None = None) -> None:
        """Raise if `decode` is not `f @ W_dec + b_dec` with the effective `W_dec` (checked on a
        few random sparse codes, to a tolerance set by the dtype), or if a weight is not finite."""
        with torch.no_grad():
            for name, tensor in self.sae.named_parameters():
                if not bool(torch.isfinite(tensor).all()):
                    raise IncompatibleDictionaryError(
                        f"the dictionary at {self.hook_out!r} has non-finite weights (NaN or inf) "
                        f"in {name!r}; retrain it or load an undamaged copy"
                    )
            weight = self.W_dec
            if rtol is None:
                rtol = 1e-9 if weight.dtype == torch.float64 else 1e-4
            generator = torch.Generator().manual_seed(0)
            f = torch.rand(4, self.d_sae, generator=generator) * (
                torch.rand(4, self.d_sae, generator=generator) < 0.05
            )
            f = f.to(weight.device, weight.dtype)
            expected = f @ weight + self.sae.b_dec
            got = self.decode(f).reshape(expected.shape)
            scale = max(1.0, float(expected.abs().max()))
            if not torch.allclose(got, expected, atol=rtol * scale, rtol=0):
                raise IncompatibleDictionaryError(
                    f"the dictionary at {self.hook_out!r} does not decode as f @ W_dec + b_dec "
                    f"(max deviation {float((got - expected).abs().max()):.2e}); feature-lens needs "
                    "an affine decoder"
                )

    def __repr__(self) -> str:
        where = (
            self.hook_in if self.hook_in == self.hook_out else f"{self.hook_in} -> {self.hook_out}"
        )
        return f"Dictionary({type(self.sae).__name__}, {where}, d_sae={self.d_sae})"
