"""`feature-lens info`: load a Lens, check it, and print what it holds."""

from __future__ import annotations

import argparse
from typing import Any

from feature_lens.cli.common import add_lens_options, load_lens
from feature_lens.cli.messages import terminal_text


def register(subparsers: Any) -> None:
    """Add the `info` sub-parser."""
    parser = subparsers.add_parser(
        "info", help="show and check the model and dictionaries a Lens would load"
    )
    add_lens_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the Lens (every compatibility check runs) and print a table of its sites."""
    lens = load_lens(args)
    cfg = lens.model.cfg
    # Names come from files (config.json, an SAE's cfg.json): escape control characters.
    t = terminal_text
    print(
        f"model {t(cfg.model_name)}: {cfg.n_layers} layers, d_model {cfg.d_model}, "
        f"{cfg.n_heads} heads, d_vocab {cfg.d_vocab}, context {cfg.n_ctx}"
    )
    print(f"gradient mode: {lens.gradient_mode}")
    print(f"{'site':34} {'kind':10} {'architecture':14} {'d_in':>6} {'d_sae':>7}  reads")
    for site, dictionary in lens.dictionaries.items():
        # Directions and cross-layer transcoder layers carry no SAE-Lens object.
        owner = dictionary.sae if dictionary.sae is not None else dictionary
        print(
            f"{t(site):34} {dictionary.kind:10} {type(owner).__name__:14} "
            f"{dictionary.d_in:>6} {dictionary.d_sae:>7}  {t(dictionary.hook_in)}"
        )
    return 0
