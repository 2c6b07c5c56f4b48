"""Options shared by the commands that load a Lens, and the one place that builds it.

Every such command takes the same vocabulary: `--model`, `--model-name`, repeated `--sae` and
`--direction`, `--device`, `--dtype`, `--batch-size`, `--gradient-mode`, TransformerLens's weight
processing flags (`--fold-ln/--no-fold-ln`, ...) and `--check-model-name/--no-check-model-name`.
Arguments that need no model are checked before the model loads.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: TransformerLens processing flags as (python name, help); each becomes --x-y / --no-x-y.
PROCESSING_FLAGS: tuple[tuple[str, str], ...] = (
    ("fold_ln", "fold LayerNorm/RMSNorm weights into the next layer (default: on)"),
    ("center_writing_weights", "centre weights that write to the residual stream (default: on)"),
    ("center_unembed", "centre the unembedding, which shifts logits (default: on)"),
    ("fold_value_biases", "fold value biases into the attention output bias (default: on)"),
    ("refactor_factored_attn_matrices", "balance W_Q/W_K and W_O/W_V (default: off)"),
)


def _flag(match: re.Match[str]) -> str:
    return "--" + match.group(1).replace("_", "-")


#: Python argument names in library messages -> the CLI's spelling of the same thing.
_CLI_SPELLING: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"check_model_name=False"), "--no-check-model-name"),
    (re.compile(r"model_name=('[^']*')"), r"--model-name \1"),
    (
        re.compile(
            r"\b(fold_ln|center_writing_weights|center_unembed|fold_value_biases|"
            r"refactor_factored_attn_matrices)\b"
        ),
        _flag,
    ),
    (re.compile(r"\bbatch_size\b"), "--batch-size"),
)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_lens_options(parser: argparse.ArgumentParser) -> None:
    """The shared loading vocabulary (see the module docstring)."""
    group = parser.add_argument_group("model and dictionaries")
    group.add_argument(
        "--model",
        default="zoo",
        help="'zoo' (the embedded default, no download), a Hugging Face model folder, or a "
        "TransformerLens name such as gpt2 (needs the hub or its cache)",
    )
    group.add_argument(
        "--model-name",
        default=None,
        help="the name the model goes by, checked against the SAEs' configs (default: the "
        "folder's name, or the TransformerLens name)",
    )
    group.add_argument(
        "--sae",
        action="append",
        default=None,
        metavar="SAE",
        help="an SAE-Lens folder (cfg.json + sae_weights.safetensors) or RELEASE:SAE_ID; repeat "
        "for several sites (default with --model zoo: the embedded SAEs at every layer)",
    )
    group.add_argument(
        "--direction",
        action="append",
        default=None,
        metavar="HOOK:FILE",
        help="attach directions as features: vectors [k, d] or [d] in a .npy, .safetensors (first "
        "tensor) or .pt file, at HOOK; repeatable",
    )
    group.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    group.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    group.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        help="prompts (or interventions) per forward pass where work is batched (default 64)",
    )
    group.add_argument(
        "--gradient-mode",
        default="straight_through",
        choices=["straight_through", "detached"],
        help="how gradients cross SAE error terms (see docs/methods.md)",
    )
    group.add_argument(
        "--check-model-name",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse SAEs whose config names another model (default: on)",
    )
    processing = parser.add_argument_group(
        "weight processing (TransformerLens; use what the SAEs were trained with)"
    )
    for name, help_text in PROCESSING_FLAGS:
        processing.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=help_text,
        )


def processing_from_args(args: argparse.Namespace) -> dict[str, bool]:
    """The processing flags given on the command line (unset ones keep their defaults)."""
    return {
        name: bool(getattr(args, name))
        for name, _ in PROCESSING_FLAGS
        if getattr(args, name, None) is not None
    }


def sae_sources(args: argparse.Namespace) -> list[Any] | None:
    """`--sae` values as `load_sae` sources: folders, or (release, sae_id) pairs."""
    if not args.sae:
        return None
    sources: list[Any] = []
    for spec in args.sae:
        path = Path(spec).expanduser()
        release, sep, sae_id = spec.partition(":")
        if path.exists() or not sep or spec.startswith((".", "/", "~")) or not sae_id:
            sources.append(spec)
        else:
            sources.append((release, sae_id))
    return sources


def check_lens_options(args: argparse.Namespace) -> None:
    """Check what can be checked without loading anything (fast, before the model loads)."""
    from feature_lens.errors import InputError, LoadingError

    for source in sae_sources(args) or []:
        if isinstance(source, str) and not Path(source).expanduser().exists():
            raise LoadingError(
                f"--sae {source!r}: no such folder; give an SAE-Lens folder (cfg.json + "
                "sae_weights.safetensors), a circuit-tracer transcoder set (config.yaml + "
                "layer_L.safetensors) or RELEASE:SAE_ID"
            )
    directions: list[str] = args.direction or []
    for spec in directions:
        hook, sep, file_name = spec.partition(":")
        if not sep or not hook or not file_name:
            raise InputError(f"--direction wants HOOK:FILE, got {spec!r}")
        if not Path(file_name).expanduser().is_file():
            raise LoadingError(f"--direction {spec!r}: no direction file at {file_name!r}")
    if args.model_name is not None and not args.model_name.strip():
        raise InputError("--model-name is empty; give the model's name, e.g. gpt2")


def cli_spelling(message: str) -> str:
    """`message` with Python argument names replaced by the CLI flags that set them."""
    for pattern, replacement in _CLI_SPELLING:
        message = pattern.sub(replacement, message)
    return message


def load_lens(args: argparse.Namespace) -> Any:
    """Build the Lens the options describe; errors name CLI flags."""
    import torch

    from feature_lens.errors import FeatureLensError
    from feature_lens.lens import Lens

    check_lens_options(args)
    dtype = getattr(torch, args.dtype)
    try:
        model = None if args.model == "zoo" else args.model
        lens = Lens.load(
            model,
            sae_sources(args),
            device=args.device,
            dtype=dtype,
            gradient_mode=args.gradient_mode,
            check_model_name=args.check_model_name,
            processing=processing_from_args(args),
            model_name=args.model_name,
        )
        if args.direction:
            lens = lens.attach(
                *(load_directions(spec, dtype=dtype, device=args.device) for spec in args.direction)
            )
    except FeatureLensError as error:
        raise type(error)(cli_spelling(str(error))) from None
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
