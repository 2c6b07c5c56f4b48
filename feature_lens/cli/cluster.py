"""`feature-lens cluster`: cluster features by their connections across one or more graphs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `cluster` sub-parser."""
    parser = subparsers.add_parser(
        "cluster", help="cluster a graph's features by their connections"
    )
    parser.add_argument(
        "graphs", nargs="+", type=Path, help="graph JSON files (feature-lens attribute --out)"
    )
    parser.add_argument("-k", "--clusters", type=int, required=True, help="number of clusters")
    parser.add_argument(
        "--activations", action="store_true", help="add activation patterns to the profiles"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the first graph, annotated with clusters"
    )
    parser.add_argument(
        "--collapse",
        action="store_true",
        help="write the graph with clusters merged into super-nodes",
    )
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Profile, cluster, annotate (or collapse) the first graph, save, print the clusters."""
    from feature_lens.cli.messages import terminal_text
    from feature_lens.clustering import annotate, cluster_profiles, collapse, connectivity_profiles
    from feature_lens.graph import AttributionGraph
    from feature_lens.outputs import check_file_target

    check_file_target(args.out, overwrite=args.overwrite)
    graphs = [AttributionGraph.load(path) for path in args.graphs]
    profiles = connectivity_profiles(graphs, include_activation=args.activations)
    clusters = cluster_profiles(profiles, args.clusters)
    result = collapse(graphs[0], clusters) if args.collapse else annotate(graphs[0], clusters)
    result.save(args.out, overwrite=args.overwrite)
    for k in sorted(set(clusters.values())):
        members = [i for i, c in clusters.items() if c == k]
        print(
            f"cluster {k}: {len(members)} features: "
            + ", ".join(terminal_text(m) for m in members[:6])
            + (" ..." if len(members) > 6 else "")
        )
    print(f"wrote {args.out}")
    return 0
