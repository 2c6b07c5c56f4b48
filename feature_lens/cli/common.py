"""Options shared by several commands: which model and dictionaries to load."""

from __future__ import annotations

import argparse
from typing import Any


def add_lens_options(parser: argparse.ArgumentParser) -> None:
    """--model, --sae, --device, --dtype, --gradient-mode."""
    parser.add_argument(
        "--model",
        default="zoo",
        help="'zoo' (the embedded default, no download), a Hugging Face model folder, or a "
        "TransformerLens name such as gpt2 (needs the hub or its cache)",
    )
    parser.add_argument(
        "--sae",
        action="append",
        default=None,
        metavar="SAE",
        help="an SAE-Lens folder (cfg.json + sae_weights.safetensors) or RELEASE:SAE_ID; repeat "
        "for several sites (default with --model zoo: the embedded SAEs at every layer)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    parser.add_argument(
        "--gradient-mode",
        default="straight_through",
        choices=["straight_through", "detached"],
        help="how gradients cross SAE error terms (see docs/methods.md)",
    )


def load_lens(args: argparse.Namespace) -> Any:
    """Build the Lens the options describe."""
    import torch

    from feature_lens.lens import Lens

    saes: list[Any] | None = None
    if args.sae:
        saes = [
            tuple(s.split(":", 1)) if ":" in s and not s.startswith((".", "/")) else s
            for s in args.sae
        ]
    model = None if args.model == "zoo" else args.model
    return Lens.load(
        model,
        saes,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        gradient_mode=args.gradient_mode,
    )
