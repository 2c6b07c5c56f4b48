"""The `feature-lens` command line.

Each subcommand lives in its own module of this package and exposes `register(subparsers)`, which
adds an argparse sub-parser whose `func` default runs the command. Modules are imported only for the
command being run, so `feature-lens --help` stays fast (importing torch, TransformerLens and SAE-Lens
takes several seconds).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand name -> (module under feature_lens.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "show the model and dictionaries a Lens would load, and check them"),
    "zoo": ("zoo", "the embedded default model: rebuild it, or report its metrics"),
    "attribute": ("attribute", "attribute a metric to SAE features and write the graph as JSON"),
    "dashboard": ("dashboard", "build feature-connectome dashboards (HTML) for a Lens"),
    "steer": ("steer", "add a multiple of a direction and show what it changes"),
    "cluster": ("cluster", "cluster a graph's features by their connections"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, the sub-parser module of that one command is imported."""
    parser = argparse.ArgumentParser(
        prog="feature-lens",
        description="Feature connectomes for sparse autoencoders.",
    )
    from feature_lens import __version__

    parser.add_argument("--version", action="version", version=f"feature-lens {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name == only:
            module = importlib.import_module(f"feature_lens.cli.{module_name}")
            module.register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `feature-lens` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command not in COMMANDS:
        parser = build_parser()
        if "--version" in args_list:
            parser.parse_args(["--version"])
        if command is None:
            parser.print_help()
            return 0 if args_list and args_list[0] in ("-h", "--help") else 2
        parser.error(f"unknown command {command!r}; choose one of {', '.join(COMMANDS)}")
    parser = build_parser(only=command)
    args = parser.parse_args(args_list)
    from feature_lens.errors import FeatureLensError

    try:
        return int(args.func(args) or 0)
    except FeatureLensError as error:
        print(f"feature-lens {command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"feature-lens {command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
