"""`feature-lens export`: write a graph in circuit-tracer's / Neuronpedia's graph format."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `export` sub-parser."""
    parser = subparsers.add_parser(
        "export",
        help="write a graph as circuit-tracer / Neuronpedia graph JSON",
        description=(
            "Write GRAPH into the folder --out as circuit-tracer's frontend reads it: "
            "<slug>.json plus graph-metadata.json (graphs already listed there are kept). "
            "Serve the folder with circuit-tracer's local server, or upload <slug>.json to "
            "Neuronpedia (docs/interchange.md)."
        ),
    )
    parser.add_argument("graph", type=Path, help="a graph file (feature-lens attribute --out)")
    parser.add_argument("--out", type=Path, required=True, help="the data folder to write into")
    parser.add_argument("--slug", help="the graph's name in the viewer (default: from its content)")
    parser.add_argument("--target-token", help="the answer's text, for the logit node's label")
    parser.add_argument(
        "--target-token-id", type=int, help="the answer's vocabulary id, for the logit node"
    )
    parser.add_argument(
        "--target-prob", type=float, help="the answer's probability, for the logit node's label"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace <slug>.json if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the graph, write the viewer's files, print where they went."""
    from feature_lens.cli.messages import terminal_text
    from feature_lens.errors import InputError
    from feature_lens.graph import AttributionGraph
    from feature_lens.graph.neuronpedia import write_graph_files

    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {str(args.out)!r} is a file; give a folder")
    graph = AttributionGraph.load(args.graph)
    path = write_graph_files(
        graph,
        args.out,
        slug=args.slug,
        overwrite=args.overwrite,
        target_token_id=args.target_token_id,
        target_token=args.target_token,
        target_prob=args.target_prob,
    )
    print(
        f"wrote {terminal_text(str(path))} and {terminal_text(str(args.out / 'graph-metadata.json'))}"
    )
    return 0
