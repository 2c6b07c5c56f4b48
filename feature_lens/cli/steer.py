"""`feature-lens steer`: add alpha times a direction and print what changes."""

from __future__ import annotations

import argparse
from typing import Any

from feature_lens.cli.common import add_lens_options, load_directions, load_lens
from feature_lens.cli.messages import terminal_text


def register(subparsers: Any) -> None:
    """Add the `steer` sub-parser."""
    parser = subparsers.add_parser(
        "steer", help="add alpha times a direction and show what changes"
    )
    add_lens_options(parser)
    parser.add_argument("--steer", required=True, metavar="HOOK:FILE", help="the direction to add")
    parser.add_argument("--alpha", type=float, required=True, help="multiple of the unit direction")
    parser.add_argument("--prompt", action="append", required=True, help="prompt (repeatable)")
    parser.add_argument("--index", type=int, default=0, help="which direction of the file")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument(
        "--generate", type=int, default=0, metavar="N", help="greedy tokens to generate"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Steer and print promoted/suppressed tokens, the most-moved features, and generations."""
    import torch

    from feature_lens.steering import steer

    lens = load_lens(args)
    directions = load_directions(args.steer, dtype=getattr(torch, args.dtype), device=args.device)
    result = steer(
        lens,
        args.prompt,
        directions,
        args.alpha,
        index=args.index,
        top_k=args.top_k,
        max_new_tokens=args.generate,
    )
    label, hook = terminal_text(directions.labels[args.index]), terminal_text(directions.hook_out)
    print(f"steering {label} at {hook} by {args.alpha:+g}")
    print("promoted:   " + ", ".join(f"{t!r} {v:+.3f}" for t, v in result.promoted))
    print("suppressed: " + ", ".join(f"{t!r} {v:+.3f}" for t, v in result.suppressed))
    for site, change in result.feature_change.items():
        moved = change.abs().sum(dim=(0, 1))
        top = torch.topk(moved, min(3, moved.numel()))
        print(
            f"{site}: features most moved "
            + ", ".join(
                f"#{int(i)} ({float(v):.3f})" for i, v in zip(top.indices, top.values, strict=True)
            )
        )
    for prompt, text in zip(args.prompt, result.generations, strict=False):
        print(f"{prompt!r} -> {text!r}")
    return 0
