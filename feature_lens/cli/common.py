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
    parser.add_argument(
        "--direction",
        action="append",
        default=None,
        metavar="HOOK:FILE",
        help="attach directions as features: vectors [k, d] or [d] in a .npy, .safetensors (first "
        "tensor) or .pt file, at HOOK; repeatable",
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
    dtype = getattr(torch, args.dtype)
    lens = Lens.load(model, saes, device=args.device, dtype=dtype, gradient_mode=args.gradient_mode)
    if args.direction:
        lens = lens.attach(
            *(load_directions(spec, dtype=dtype, device=args.device) for spec in args.direction)
        )
    return lens


def load_directions(spec: str, *, dtype: Any = None, device: str = "cpu") -> Any:
    """`HOOK:FILE` -> a `Directions` (labels from the file name)."""
    from pathlib import Path

    import torch

    from feature_lens.errors import InputError
    from feature_lens.lens import Directions
    from feature_lens.lens.directions import read_vectors

    hook, sep, file_name = spec.partition(":")
    if not sep or not file_name or not hook:
        raise InputError(f"--direction wants HOOK:FILE, got {spec!r}")
    path = Path(file_name)
    vectors = read_vectors(path)
    vectors = vectors.to(device=device, dtype=dtype or torch.float32)
    k = 1 if vectors.ndim == 1 else int(vectors.shape[0])
    labels = [path.stem] if k == 1 else [f"{path.stem}[{j}]" for j in range(k)]
    return Directions(vectors, hook, labels=labels, name=f"{hook}:{path.stem}")
