"""`feature-lens serve`: the interactive explorer in the browser (docs/explorer.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from feature_lens.cli.common import add_lens_options, load_lens


def register(subparsers: Any) -> None:
    """Add the `serve` sub-parser."""
    parser = subparsers.add_parser(
        "serve", help="open the interactive circuit explorer (a local web app)"
    )
    add_lens_options(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; anything else exposes "
        "the model to the network)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    parser.add_argument(
        "--out",
        default="feature-lens-graphs",
        help="folder where graphs and their annotations are kept (default feature-lens-graphs/)",
    )
    parser.add_argument(
        "--corpus",
        default=None,
        metavar="FILE",
        help="text file, one prompt per line, for the feature panels' top examples (default: the "
        "embedded model's corpus for --model zoo, else the prompts typed so far)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=64, help="longest prompt accepted, in tokens (default 64)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the Lens, then serve until Ctrl-C."""
    from feature_lens.errors import InputError
    from feature_lens.serve.server import build, corpus_source, free_port, serve
    from feature_lens.serve.store import GraphStore

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port; give 0-65535 (0: any free port)")
    if args.max_tokens < 1:
        raise InputError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    port = free_port(args.host) if args.port == 0 else args.port
    print(f"loading {args.model} ...", file=sys.stderr)
    lens = load_lens(args)
    store = GraphStore(args.out)
    corpus = corpus_source(lens, args.model == "zoo", args.corpus, store)
    app = build(
        lens,
        args.out,
        host=args.host,
        port=port,
        model_name=args.model,
        corpus=corpus,
        max_tokens=args.max_tokens,
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach it can run the model",
            file=sys.stderr,
        )
    print(
        f"feature-lens explorer: http://{args.host if ':' not in args.host else f'[{args.host}]'}:{port}/  (Ctrl-C stops it)",
        file=sys.stderr,
    )
    serve(app, host=args.host, port=port)
    return 0
