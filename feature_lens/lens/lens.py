"""The Lens: a TransformerLens model with dictionaries spliced in at hook points.

Each dictionary's site writes `decode(f) + err` in place of the activation it reconstructs, with
`err = x - decode(f)`, so the spliced model computes exactly what the model computes (the error
term makes the splice an identity) while exposing the features `f` and the error `err` as nodes
that can be read, patched, and differentiated. How gradients cross a splice is the `GradientMode`
(see `feature_lens.lens.run`). Everything else in feature-lens takes a Lens.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from feature_lens.errors import IncompatibleDictionaryError, InputError
from feature_lens.lens.cross_layer import (
    CrossLayerRun,
    CrossLayerSite,
    check_complete,
    cross_layer_splice_hook,
)
from feature_lens.lens.dictionary import Dictionary, hook_layer, stop_layer_for
from feature_lens.lens.run import (
    EMBED_SITE,
    Freeze,
    GradientMode,
    RunPlan,
    RunResult,
    finish_splice,
    frozen_gate,
)
from feature_lens.lens.unembed import run_model

Prompts = str | Sequence[str] | Tensor


@dataclass
class LensRun:
    """A plain spliced forward pass: tokens, logits, and every site's features and error terms."""

    tokens: Int[Tensor, "batch pos"]
    logits: Float[Tensor, "batch pos d_vocab"]
    features: dict[str, Tensor]
    errors: dict[str, Tensor]


def _every_hook(_name: str) -> bool:
    return True


def _normalise_model_name(name: str) -> str:
    return name.lower().rsplit("/", 1)[-1].removesuffix("-small")


def _check_texts(texts: Sequence[str]) -> None:
    """Refuse empty prompts and lone surrogates (undecodable bytes), naming the prompt's index."""
    for i, text in enumerate(texts):
        if not text.strip():
            raise InputError(f"prompt {i} is empty")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise InputError(
                    f"prompt {i} contains a lone surrogate ({text[error.start]!r}), which is not "
                    "text (undecodable bytes?)"
                ) from None


class Lens:
    """A model with dictionaries spliced in.

    Args:
        model: a `transformer_lens.HookedTransformer`.
        dictionaries: SAE-Lens SAEs/transcoders or `Dictionary` objects (one per site).
        gradient_mode: "straight_through" (default, Marks et al.) or "detached" (SAE-Lens).
        check_model_name: refuse dictionaries whose config names a different model.
    """

    def __init__(
        self,
        model: Any,
        dictionaries: Iterable[Any] = (),
        *,
        gradient_mode: GradientMode = "straight_through",
        check_model_name: bool = True,
    ) -> None:
        if gradient_mode not in ("straight_through", "detached"):
            raise InputError(
                f"gradient_mode must be 'straight_through' or 'detached', got {gradient_mode!r}"
            )
        self.model = model
        self.gradient_mode: GradientMode = gradient_mode
        self.check_model_name = check_model_name
        self._order, self._widths = _hook_layout(model)
        self.dictionaries: dict[str, Dictionary] = self._attached(dictionaries)

    def _attached(self, dictionaries: Iterable[Any]) -> dict[str, Dictionary]:
        """`dictionaries` checked against the model, by site, in forward order."""
        attached: dict[str, Dictionary] = {}
        for item in dictionaries:
            dictionary = item if isinstance(item, Dictionary) else Dictionary(item)
            self._check(dictionary, self.check_model_name)
            if dictionary.site in attached:
                raise IncompatibleDictionaryError(
                    f"two dictionaries are named {dictionary.site!r}; attach one per hook, or "
                    "give each a distinct name"
                )
            attached[dictionary.site] = dictionary
        check_complete(list(attached.values()))
        return dict(sorted(attached.items(), key=lambda kv: self._order[kv[1].hook_out]))

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def load(
        cls,
        model: str | Any | None = None,
        saes: Iterable[Any] | str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        gradient_mode: GradientMode = "straight_through",
        check_model_name: bool = True,
        processing: Mapping[str, bool] | None = None,
        model_name: str | None = None,
    ) -> Lens:
        """Load a model and dictionaries by name or path (None or "zoo": the embedded default).

        `saes` items may be SAE-Lens objects, SAE-Lens folders, circuit-tracer transcoder-set
        folders (every layer's transcoder), or `(release, sae_id)` pairs.
        `processing` and `model_name` go to `load_model` (TransformerLens weight processing; the
        name SAE configs are checked against); `check_model_name=False` skips that check.
        """
        from feature_lens.loading import load_model, load_sae

        source = cast(Any, model)
        by_name = source is None or isinstance(source, str | os.PathLike)
        model_obj = (
            load_model(
                cast("str | os.PathLike[str] | None", source),
                device=device,
                dtype=dtype,
                processing=processing,
                model_name=model_name,
            )
            if by_name
            else cast(Any, model)
        )
        if saes is None or saes == "zoo":
            if source is None or (by_name and os.fspath(source) == "zoo"):
                from feature_lens.zoo import zoo_dictionary_dirs

                sources: list[Any] = list(zoo_dictionary_dirs().values())
            else:
                sources = []
        elif isinstance(saes, str | os.PathLike):
            sources = [saes]
        else:
            sources = list(saes)
        loaded: list[Any] = []
        for s in sources:
            item = (
                load_sae(*cast("tuple[str, str]", s), device=device, dtype=dtype)
                if isinstance(s, tuple)
                else load_sae(s, device=device, dtype=dtype)
            )
            # A circuit-tracer transcoder-set folder loads as one transcoder per layer.
            loaded += item if isinstance(item, list) else [item]
        return cls(
            model_obj, loaded, gradient_mode=gradient_mode, check_model_name=check_model_name
        )

    def attach(self, *dictionaries: Any) -> Lens:
        """A new Lens over the same model with `dictionaries` added (e.g. `Directions`); the
        model's hook layout is reused, so no forward pass runs."""
        lens = copy.copy(self)
        lens.dictionaries = self._attached([*self.dictionaries.values(), *dictionaries])
        return lens

    def _check(self, dictionary: Dictionary, check_model_name: bool) -> None:
        for role, hook in (("reads", dictionary.hook_in), ("writes", dictionary.hook_out)):
            if hook not in self.model.hook_dict:
                close = difflib.get_close_matches(hook, list(self.model.hook_dict), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise IncompatibleDictionaryError(
                    f"dictionary {dictionary!r} {role} hook {hook!r}, which the model does not "
                    f"have{hint}"
                )
        for hook, width in (
            (dictionary.hook_in, dictionary.d_in),
            (dictionary.hook_out, dictionary.d_out),
        ):
            shape = self._widths.get(hook)
            if shape is not None and shape != (width,):
                raise IncompatibleDictionaryError(
                    f"dictionary {dictionary!r} expects width {width} at {hook!r}, but the model's "
                    f"activation there has shape [batch, pos, {', '.join(map(str, shape))}]"
                )
        dictionary.check_affine()
        model_name = getattr(self.model.cfg, "model_name", None)
        if (
            check_model_name
            and dictionary.model_name
            and model_name
            and _normalise_model_name(dictionary.model_name) != _normalise_model_name(model_name)
        ):
            raise IncompatibleDictionaryError(
                f"dictionary {dictionary!r} was trained on {dictionary.model_name!r} but the "
                f"model is {model_name!r}; load the matching model, name the model with "
                f"model_name={dictionary.model_name!r} if it is that one, or pass "
                "check_model_name=False to skip this check"
            )

    # ----------------------------------------------------------------------------- queries
    @property
    def sites(self) -> list[str]:
        """Dictionary sites in forward order."""
        return list(self.dictionaries)

    def site_order(self, site: str) -> int:
        """Position of a site in the forward pass (the embedding site comes first)."""
        if site == EMBED_SITE:
            return -1
        return self._order[self.dictionary(site).hook_out]

    def site_layer(self, site: str) -> int:
        """Block index of a site (-1 for the embedding site)."""
        return -1 if site == EMBED_SITE else self.dictionary(site).layer

    def dictionary(self, site: str) -> Dictionary:
        """The dictionary at `site`, with a clear error for unknown sites."""
        if site not in self.dictionaries:
            close = difflib.get_close_matches(site, self.sites, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InputError(
                f"no dictionary at site {site!r}{hint} (sites: {', '.join(self.sites) or 'none'})"
            )
        return self.dictionaries[site]

    @property
    def device(self) -> torch.device:
        """Device of the model's weights."""
        return next(self.model.parameters()).device

    # ---------------------------------------------------------------------------- tokens
    def to_tokens(
        self, prompts: Prompts, *, prepend_bos: bool | None = None
    ) -> Int[Tensor, "batch pos"]:
        """Token ids `[batch, pos]` for prompts given as text or ids, with input checks.

        Several texts must tokenize to the same length (attribution compares positions across
        prompts); an empty prompt, a prompt longer than the context, or an id outside the
        vocabulary raise `InputError`.
        """
        n_ctx, d_vocab = int(self.model.cfg.n_ctx), int(self.model.cfg.d_vocab)
        if isinstance(prompts, Tensor):
            tokens = prompts.unsqueeze(0) if prompts.ndim == 1 else prompts
            if tokens.ndim != 2 or tokens.dtype not in (torch.int64, torch.int32):
                raise InputError(
                    f"token ids must be an integer tensor [batch, pos], got {tuple(prompts.shape)} "
                    f"{prompts.dtype}"
                )
            if tokens.shape[0] == 0 or tokens.shape[1] == 0:
                raise InputError(f"empty prompt: token tensor of shape {tuple(tokens.shape)}")
            if tokens.min() < 0 or tokens.max() >= d_vocab:
                raise InputError(
                    f"token id {int(tokens.max() if tokens.max() >= d_vocab else tokens.min())} "
                    f"is outside the vocabulary [0, {d_vocab})"
                )
            tokens = tokens.long()
        else:
            texts = [prompts] if isinstance(prompts, str) else list(prompts)
            if not texts:
                raise InputError("no prompts given")
            _check_texts(texts)
            if self.model.tokenizer is None:
                raise InputError(
                    "the model has no tokenizer (its folder had no tokenizer files); pass token "
                    "ids instead of text, or add the tokenizer files to the model folder"
                )
            rows = [
                self.model.to_tokens(t, prepend_bos=prepend_bos, truncate=False)[0] for t in texts
            ]
            lengths = {len(r) for r in rows}
            if len(lengths) > 1:
                detail = ", ".join(f"{i}: {len(r)}" for i, r in enumerate(rows))
                raise InputError(
                    f"prompts tokenize to different lengths ({detail}); give prompts of equal "
                    "length (or token ids) so positions line up"
                )
            tokens = torch.stack(rows)
        if tokens.shape[1] > n_ctx:
            raise InputError(
                f"prompt has {tokens.shape[1]} tokens but the model's context is {n_ctx} tokens"
            )
        return tokens.to(self.device)

    # --------------------------------------------------------------------------- running
    def run(self, prompts: Prompts, *, splice: bool = True) -> LensRun:
        """Run prompts through the spliced model (no gradients); features and errors per site."""
        tokens = self.to_tokens(prompts)
        with torch.no_grad():
            result = self.forward(tokens, RunPlan(splice=splice))
        return LensRun(tokens, result.logits, result.features, result.errors)

    def forward(self, tokens: Int[Tensor, "batch pos"], plan: RunPlan | None = None) -> RunResult:
        """One forward pass of the model as `plan` says (see `RunPlan`); gradients follow the
        ambient autograd mode, so wrap in `torch.no_grad()` when none are needed."""
        plan = plan or RunPlan()
        mode: GradientMode = plan.gradient_mode or self.gradient_mode
        for site in [*plan.edits, *plan.leaf_sites, *plan.record_pre]:
            if site != EMBED_SITE:
                self.dictionary(site)
        result = RunResult(logits=torch.empty(0))
        hooks: list[tuple[str, Callable[..., Tensor]]] = []
        hooks += self._embedding_hooks(plan, result)
        if plan.freeze is not None:
            hooks += _freeze_hooks(self.model, plan.freeze)
        if plan.splice:
            hooks += self._splice_hooks(plan, mode, result)
        elif plan.capture_inputs:
            for site in plan.capture_inputs:
                hooks.append((self.dictionary(site).hook_in, _record(result.inputs, site)))
        for name in plan.record_hooks:
            hooks.append((name, _record(result.hooks, name)))
        result.logits = self._run(tokens, hooks, plan)
        return result

    def _splice_hooks(
        self, plan: RunPlan, mode: GradientMode, result: RunResult
    ) -> list[tuple[str, Callable[..., Tensor]]]:
        """Every site's hooks: the splice where the site must encode, else a light hook."""
        hooks: list[tuple[str, Callable[..., Tensor]]] = []
        inputs: dict[str, Tensor] = {}
        needs = {site: _needs_encode(site, d, plan) for site, d in self.dictionaries.items()}
        # A cross-layer transcoder's layers share features: all of them encode, or none.
        clt_runs: dict[int, CrossLayerRun] = {}
        for site, dictionary in self.dictionaries.items():
            if isinstance(dictionary, CrossLayerSite) and needs[site]:
                clt_runs.setdefault(id(dictionary.clt), CrossLayerRun())
        for site, dictionary in self.dictionaries.items():
            if site in plan.capture_inputs:
                hooks.append((dictionary.hook_in, _record(result.inputs, site)))
            shared = (
                clt_runs.get(id(dictionary.clt)) if isinstance(dictionary, CrossLayerSite) else None
            )
            if not needs[site] and shared is None:
                hooks.append((dictionary.hook_out, _light_hook(site, plan, result)))
                continue
            if dictionary.hook_in != dictionary.hook_out:
                hooks.append((dictionary.hook_in, _record(inputs, site)))
            if isinstance(dictionary, CrossLayerSite):
                assert shared is not None
                splice = cross_layer_splice_hook(
                    site, dictionary, plan, mode, inputs, result, shared
                )
            else:
                splice = self._splice_hook(site, dictionary, plan, mode, inputs, result)
            hooks.append((dictionary.hook_out, splice))
        return hooks

    def _run(
        self, tokens: Tensor, hooks: list[tuple[str, Callable[..., Tensor]]], plan: RunPlan
    ) -> Tensor:
        """The model's forward with `hooks`, from the tokens or from `plan.start_resid`."""
        if plan.start_at_layer is None:
            return run_model(
                self.model,
                tokens,
                hooks,
                stop_at_layer=plan.stop_at_layer,
                logit_positions=plan.logit_positions,
            )
        if plan.start_resid is None:
            raise ValueError("RunPlan.start_at_layer needs start_resid (the stream before it)")
        return run_model(
            self.model,
            plan.start_resid,
            hooks,
            start_at_layer=plan.start_at_layer,
            stop_at_layer=plan.stop_at_layer,
            logit_positions=plan.logit_positions,
        )

    def stop_layer(self, sites: Iterable[str]) -> int | None:
        """How many blocks must run to read or write every site in `sites` (TransformerLens's
        `stop_at_layer`), or None when the whole model must: passes whose targets are features
        stop after the last block that holds one of them. The one place this rule lives."""
        dictionaries = [self.dictionary(site) for site in sites if site != EMBED_SITE]
        hooks = [hook for d in dictionaries for hook in (d.hook_in, d.hook_out)]
        return stop_layer_for(hooks, int(self.model.cfg.n_layers))

    def start_layer(self, sites: Iterable[str]) -> int | None:
        """The first block whose hooks every site in `sites` lies in or after (reads and writes),
        or None when one of them is the embedding (or before the first block): a block-local
        pass that only needs these sites may start there from the cached stream."""
        first = 10**9
        for site in sites:
            if site == EMBED_SITE:
                return None
            dictionary = self.dictionary(site)
            first = min(first, hook_layer(dictionary.hook_in), hook_layer(dictionary.hook_out))
        return first if 0 < first < int(self.model.cfg.n_layers) else None

    def _embedding_hooks(
        self, plan: RunPlan, result: RunResult
    ) -> list[tuple[str, Callable[..., Tensor]]]:
        """Record token embeddings at `blocks.0.hook_resid_pre` (before any splice there), apply an
        `add` edit of `EMBED_SITE`, and if asked add a zero leaf so token-node gradients can be read."""
        want_leaf = EMBED_SITE in plan.leaf_sites
        edit = plan.edits.get(EMBED_SITE)

        def hook(act: Tensor, hook: Any) -> Tensor:
            result.embeddings = act if plan.keep_graph else act.detach()
            if edit is not None and edit.add is not None:
                act = act + edit.add
            if want_leaf:
                leaf = torch.zeros_like(act, requires_grad=True)
                result.leaves[EMBED_SITE] = leaf
                return act + leaf
            return act

        return [("blocks.0.hook_resid_pre", hook)]

    def _splice_hook(
        self,
        site: str,
        dictionary: Dictionary,
        plan: RunPlan,
        mode: GradientMode,
        inputs: dict[str, Tensor],
        result: RunResult,
    ) -> Callable[..., Tensor]:
        edit = plan.edits.get(site)
        want_pre = site in plan.record_pre
        want_leaf = site in plan.leaf_sites

        # Straight through with no feature/error edit, the output is the activation itself: the
        # features and the error term are read, never differentiated (unless the graph is kept),
        # so they are computed without autograd history.
        unread = (
            mode == "straight_through"
            and plan.error_term
            and not plan.keep_graph
            and not want_pre
            and (edit is None or (edit.features is None and edit.error is None))
            and not _skip_path_live(dictionary, plan)
        )

        def hook(act: Tensor, hook: Any) -> Tensor:
            x_in = inputs.pop(site) if dictionary.hook_in != dictionary.hook_out else act
            if unread and torch.is_grad_enabled():
                with torch.no_grad():
                    f, err = _read_splice(dictionary, act, x_in)
                result.features[site], result.errors[site] = f, err
                return _light_hook(site, plan, result)(act, hook)
            if want_pre:
                f, pre = dictionary.encode_with_pre(x_in)
                result.pre_acts[site] = pre
            else:
                f = dictionary.encode(x_in)
            decoded = dictionary.decode(f)
            skip = dictionary.skip(x_in) if dictionary.has_skip else None
            x_hat = decoded if skip is None else decoded + skip
            err = act - x_hat
            f_new = edit.features(f) if edit is not None and edit.features is not None else f
            err_new = edit.error(err) if edit is not None and edit.error is not None else err
            if not plan.error_term:
                out = dictionary.decode(f_new)
                out = out if skip is None else out + skip
            elif mode == "straight_through":
                out = act
                if f_new is not f:
                    out = out + (dictionary.decode(f_new) - decoded)
                if err_new is not err:
                    out = out + (err_new - err)
                if skip is not None and _skip_path_live(dictionary, plan):
                    out = out + _skip_change(dictionary, plan, skip)
            else:
                new_hat = x_hat if f_new is f else dictionary.decode(f_new)
                if f_new is not f and skip is not None:
                    new_hat = new_hat + skip
                out = new_hat + err_new.detach()
            return finish_splice(out, site, f, err, edit, plan, result, want_leaf=want_leaf)

        return hook


def _hook_layout(model: Any) -> tuple[dict[str, int], dict[str, tuple[int, ...]]]:
    """From one dry run of two tokens: hook name -> position in the order hooks fire during a
    forward pass (hooks that did not fire follow, in registration order), and hook name -> the
    activation's shape after `[batch, pos]` (what `_check` compares dictionary widths with)."""
    order: dict[str, int] = {}
    widths: dict[str, tuple[int, ...]] = {}

    def record(act: Tensor, hook: Any) -> Tensor:
        order.setdefault(hook.name, len(order))
        widths.setdefault(hook.name, tuple(act.shape[2:]))
        return act

    tokens = torch.zeros(1, 2, dtype=torch.long, device=model.cfg.device)
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(_every_hook, record)])
    for name in model.hook_dict:
        order.setdefault(name, len(order))
    return order, widths


def _read_splice(dictionary: Dictionary, act: Tensor, x_in: Tensor) -> tuple[Tensor, Tensor]:
    """The features and error term of a site whose output is the activation itself."""
    f = dictionary.encode(x_in)
    skip = dictionary.skip(x_in) if dictionary.has_skip else None
    decoded = dictionary.decode(f)
    return f, act - (decoded if skip is None else decoded + skip)


def _needs_encode(site: str, dictionary: Dictionary, plan: RunPlan) -> bool:
    """Whether a pass must encode and decode the site (else its splice, an identity, is skipped)."""
    edit = plan.edits.get(site)
    return (
        plan.encode_sites is None
        or site in plan.encode_sites
        or site in plan.record_pre
        or (edit is not None and (edit.features is not None or edit.error is not None))
        or _skip_path_live(dictionary, plan)
    )


def _skip_path_live(dictionary: Dictionary, plan: RunPlan) -> bool:
    """Whether a skip transcoder's skip term must be put back on the path: its output hook is
    held by a `Freeze` with `mlp="stop"`, which would otherwise cut the linear skip path too.
    The skip is part of the replacement, not of the MLP (circuit-tracer keeps it live likewise)."""
    freeze = plan.freeze
    return (
        dictionary.has_skip
        and freeze is not None
        and freeze.mlp == "stop"
        and dictionary.hook_out in freeze.cache
    )


def _skip_change(dictionary: Dictionary, plan: RunPlan, skip: Tensor) -> Tensor:
    """What the skip term adds to a held output: `skip(x_in) - skip(x_in_clean)`, which is zero
    in value on the clean input (and zero-valued with the skip's gradient when the clean input
    is not cached, i.e. `Freeze(replace=False)` on the clean run)."""
    assert plan.freeze is not None
    clean_in = plan.freeze.cache.get(dictionary.hook_in) if plan.freeze.replace else None
    base = skip.detach() if clean_in is None else dictionary.skip(clean_in).to(skip.dtype)
    return skip - base


def _light_hook(site: str, plan: RunPlan, result: RunResult) -> Callable[..., Tensor]:
    """A site that is not encoded: apply its `add` edit and leaf to the activation itself."""
    edit = plan.edits.get(site)
    want_leaf = site in plan.leaf_sites

    def hook(act: Tensor, hook: Any) -> Tensor:
        out = act if edit is None or edit.add is None else act + edit.add
        if want_leaf:
            leaf = torch.zeros_like(out, requires_grad=True)
            result.leaves[site] = leaf
            out = out + leaf
        return out

    return hook


def _record(store: dict[str, Tensor], key: str) -> Callable[..., Tensor]:
    def hook(act: Tensor, hook: Any) -> Tensor:
        store[key] = act
        return act

    return hook


def _freeze_hooks(model: Any, freeze: Freeze) -> list[tuple[str, Callable[..., Tensor]]]:
    """Hooks that hold LayerNorm scales, attention patterns and MLPs as `freeze` says."""

    def held(name: str) -> Callable[..., Tensor]:
        def hook(act: Tensor, hook: Any) -> Tensor:
            if freeze.replace:
                return freeze.cache[name].expand_as(act).to(act.dtype)
            return act.detach()

        return hook

    hooks: list[tuple[str, Callable[..., Tensor]]] = []
    for name in model.hook_dict:
        if name.endswith(("hook_scale", "attn.hook_pattern")):
            hooks.append((name, held(name)))
    for layer in range(int(model.cfg.n_layers)):
        if getattr(model.cfg, "attn_only", False):
            break
        if freeze.mlp == "stop":
            hooks.append((f"blocks.{layer}.hook_mlp_out", held(f"blocks.{layer}.hook_mlp_out")))
        else:
            hooks += _linear_mlp_hooks(freeze.cache, layer)
    return hooks


def _linear_mlp_hooks(
    cache: dict[str, Tensor], layer: int
) -> list[tuple[str, Callable[..., Tensor]]]:
    """Replace the MLP activation by its frozen gate: post = pre * (post_clean / pre_clean)."""
    pre_name, post_name = f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.mlp.hook_post"
    gate = frozen_gate(cache[post_name], cache[pre_name])
    current: dict[str, Tensor] = {}

    def on_pre(act: Tensor, hook: Any) -> Tensor:
        current["pre"] = act
        return act

    def on_post(act: Tensor, hook: Any) -> Tensor:
        # A run over a prefix of the prompt (block-local edges) uses the prefix's gates.
        return current.pop("pre") * gate[:, : act.shape[1]].detach()

    return [(pre_name, on_pre), (post_name, on_post)]


def freeze_cache_names(model: Any, mlp: str = "stop") -> list[str]:
    """Hook names whose clean values a `Freeze` needs."""
    names = [n for n in model.hook_dict if n.endswith(("hook_scale", "attn.hook_pattern"))]
    if not getattr(model.cfg, "attn_only", False):
        for layer in range(int(model.cfg.n_layers)):
            if mlp == "stop":
                names.append(f"blocks.{layer}.hook_mlp_out")
            else:
                names += [f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.mlp.hook_post"]
    return names
