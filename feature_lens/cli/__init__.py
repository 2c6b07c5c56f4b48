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
from typing import NoReturn

#: subcommand name -> (module under feature_lens.cli, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "show the model and dictionaries a Lens would load, and check them"),
    "zoo": ("zoo", "the embedded default model: rebuild it, or report its metrics"),
    "attribute": ("attribute", "attribute a metric to SAE features and write the graph as JSON"),
    "dashboard": ("dashboard", "build feature-connectome dashboards (HTML) for a Lens"),
    "steer": ("steer", "add a multiple of a direction and show what it changes"),
    "cluster": ("cluster", "cluster a graph's features by their connections"),
    "export": ("export", "write a graph as circuit-tracer / Neuronpedia graph JSON"),
    "serve": ("serve", "open the interactive circuit explorer (a local web app)"),
}


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (and a pointer to --help) instead of the usage."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: error: MESSAGE (see PROG --help)` and exit with status 2."""
        from feature_lens.cli.messages import terminal_text

        self.exit(2, f"{self.prog}: error: {terminal_text(message)} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, the sub-parser module of that one command is imported."""
    parser = Parser(
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
    """Entry point of the `feature-lens` console script; returns the exit status.

    Every failure a user can cause ends here as one line on stderr and a nonzero status (see
    `report_error`): 1 for an error, 2 for bad usage (argparse), 130 for Ctrl-C, 143 for SIGTERM.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    try:
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
        return int(args.func(args) or 0)
    except BaseException as error:
        return report_error(command or "", error)


def report_error(command: str, error: BaseException) -> int:
    """Print `error` as one line (`feature-lens COMMAND: error: ...`) and return the exit status;
    re-raise anything that is not a user-facing failure (a bug keeps its traceback)."""
    from feature_lens.cli.messages import one_line

    prefix = f"feature-lens {command}:".replace(" :", ":")
    if isinstance(error, SystemExit):
        raise error
    if isinstance(error, KeyboardInterrupt):
        print(f"{prefix} interrupted; no partial output was kept", file=sys.stderr)
        return 130
    message = one_line(error)
    if message is None:
        raise error
    print(f"{prefix} error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
