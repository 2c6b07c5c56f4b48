"""Fixtures for the attribution tests: a float64 tiny model with one dictionary of every kind, and
independent reference computations written with raw TransformerLens hooks (no Lens code)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import PromptSet, PromptState, baseline_values, node_values
from tests.conftest import full_dictionaries, make_model

CLEAN = "w1 w5 w3 w9 w2 w7 w4"
CORRUPT = "w1 w5 w8 w9 w2 w6 w4"
F64 = torch.float64


@pytest.fixture(scope="module")
def model64(tokenizer: Any) -> Any:
    return make_model(tokenizer, dtype=F64, seed=3)


@pytest.fixture(scope="module")
def lens64(model64: Any) -> Lens:
    return Lens(model64, full_dictionaries(model64, dtype=F64))


@pytest.fixture(scope="module")
def prompts64(lens64: Lens) -> PromptSet:
    return PromptSet.build(lens64, CLEAN, CORRUPT, answers=[[5, 9]])


@pytest.fixture(scope="module")
def state64(lens64: Lens, prompts64: PromptSet) -> PromptState:
    return make_state(lens64, prompts64)


def make_state(lens: Lens, prompts: PromptSet, baseline: str = "corrupted") -> PromptState:
    base = baseline_values(lens, prompts, baseline)  # type: ignore[arg-type]
    return PromptState(
        prompts.clean[:1],
        None if prompts.answers is None else prompts.answers[:1],
        node_values(lens, prompts.clean[:1]),
        base.row(0),
    )


def splice_reference_hooks(
    lens: Lens, site: str, edit: Any, cache: dict[str, torch.Tensor]
) -> list[tuple[str, Any]]:
    """Raw hooks that apply `edit(f, err) -> (f', err')` at one site the textbook way:
    out = sae.decode(f') + err', with f = sae.encode(x_in) and err = x_out - sae.decode(f)."""
    dictionary = lens.dictionary(site)
    sae = dictionary.sae
    store: dict[str, torch.Tensor] = {}
    hooks: list[tuple[str, Any]] = []
    if dictionary.hook_in != dictionary.hook_out:
        hooks.append((dictionary.hook_in, lambda act, hook: store.__setitem__("x", act) or act))

    def splice(act: torch.Tensor, hook: Any) -> torch.Tensor:
        x_in = store.get("x", act)
        f = sae.encode(x_in)
        err = act - sae.decode(f)
        f_new, err_new = edit(f.clone(), err.clone())
        out = sae.decode(f_new) + err_new
        cache["out"] = out
        return out

    hooks.append((site, splice))
    return hooks


def read_feature(
    model: Any, lens: Lens, tokens: torch.Tensor, hooks: list[tuple[str, Any]], site: str
) -> torch.Tensor:
    """Run the plain model with `hooks` and encode the activation at `site` with its SAE."""
    dictionary = lens.dictionary(site)
    captured: dict[str, torch.Tensor] = {}

    def grab(act: torch.Tensor, hook: Any) -> torch.Tensor:
        captured["x"] = act
        return act

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[*hooks, (dictionary.hook_in, grab)])
        return dictionary.sae.encode(captured["x"])
