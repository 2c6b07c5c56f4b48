"""`feature-lens dashboard`: build feature-connectome dashboards (HTML) for a Lens.

With no options it is the main job: the embedded model, its corpus, a connectome for one planted
task, pages for the features in it and the top features per layer, written to --out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from feature_lens.cli.common import add_lens_options, check_lens_options, load_lens, positive_int
from feature_lens.cli.ray_options import add_ray_options, check_ray_options, executor_from_args
from feature_lens.dashboard.data import parse_feature

DEFAULT_TASK = "ioi"


def register(subparsers: Any) -> None:
    """Add the `dashboard` sub-parser."""
    p = subparsers.add_parser(
        "dashboard",
        help="build feature-connectome dashboards (HTML) for a Lens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_lens_options(p)
    corpus = p.add_argument_group("prompts")
    corpus.add_argument(
        "--prompts",
        type=Path,
        help="the corpus: a text file (one prompt a line), .jsonl, .json list, .parquet, or a "
        "Hugging Face datasets folder (save_to_disk); default with --model zoo: its corpus",
    )
    corpus.add_argument(
        "--text-field", default="text", help="text field of JSONL/Parquet/datasets rows"
    )
    corpus.add_argument("--split", default=None, help="split of a saved DatasetDict")
    corpus.add_argument(
        "--n-prompts",
        type=positive_int,
        default=None,
        help="use at most this many prompts (default: all of --prompts; 1000 of the zoo corpus)",
    )
    corpus.add_argument(
        "--chunk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cut prompts longer than the context into windows (default); --no-chunk makes "
        "them an error",
    )
    which = p.add_argument_group("features (combined; default: the task's graph plus --top-k 8)")
    which.add_argument("--features", nargs="+", default=[], metavar="SITE:IDX")
    which.add_argument("--top-k", type=int, default=None, help="top features per site by density")
    which.add_argument(
        "--graph", type=Path, help="a graph.json written by `feature-lens attribute`"
    )
    p.add_argument(
        "--task", default=None, help=f"zoo task for the connectome (default {DEFAULT_TASK})"
    )
    p.add_argument("--no-task", action="store_true", help="no connectome for a zoo task")
    p.add_argument(
        "--task-prompts", type=int, default=16, help="prompt pairs of the task's graph (default 16)"
    )
    p.add_argument(
        "--max-nodes", type=int, default=48, help="nodes kept in the task's graph (default 48)"
    )
    p.add_argument(
        "--clusters",
        type=int,
        default=None,
        metavar="K",
        help="cluster the connectome's features by connectivity into K clusters: colours in the "
        "connectome, a page per cluster, the collapsed connectome (needs a graph)",
    )
    p.add_argument(
        "--method",
        default="attribution",
        choices=["attribution", "direct"],
        help="how feature pages compute upstream weights (downstream is exact)",
    )
    p.add_argument(
        "--graph-method",
        default="attribution",
        choices=["exact", "attribution", "ig", "direct"],
        help="method of the task's attribution graph",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 for the small embedded model, where more threads only "
        "contend; torch's default otherwise)",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where corpus passes are kept between builds, keyed by model, dictionaries, corpus "
        "and features (default: $FEATURE_LENS_CACHE_DIR, else ~/.cache/feature-lens/corpus-passes)",
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    add_ray_options(p, "the corpus pass, sharded by chunks of prompts")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def cache_dir(args: argparse.Namespace) -> Path:
    """--cache-dir, else $FEATURE_LENS_CACHE_DIR, else ~/.cache/feature-lens/corpus-passes."""
    import os

    if args.cache_dir is not None:
        return Path(args.cache_dir)
    if os.environ.get("FEATURE_LENS_CACHE_DIR"):
        return Path(os.environ["FEATURE_LENS_CACHE_DIR"])
    return Path.home() / ".cache" / "feature-lens" / "corpus-passes"


def _read_documents(args: argparse.Namespace) -> list[Any] | None:
    """The --prompts corpus, read and checked (None for the zoo's own corpus)."""
    from feature_lens.errors import InputError
    from feature_lens.loading.corpus import read_corpus

    if args.prompts is None:
        if args.model != "zoo":
            raise InputError(
                "give --prompts FILE: only the embedded model (--model zoo) has a default corpus"
            )
        return None
    return read_corpus(
        args.prompts, text_field=args.text_field, split=args.split, limit=args.n_prompts
    )


def _prompts(lens: Any, args: argparse.Namespace, documents: list[Any] | None) -> Any:
    """Token ids of the corpus cut to the context, or the zoo corpus's texts."""
    if documents is None:
        from feature_lens.zoo import corpus_texts

        return corpus_texts(args.n_prompts or 1000, n_ctx=int(lens.model.cfg.n_ctx))
    from feature_lens.loading.corpus import tokenize_corpus

    return tokenize_corpus(lens.model, documents, chunk=args.chunk)


def run(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    from feature_lens.errors import InputError
    from feature_lens.outputs import check_folder_target

    check_folder_target(args.out, overwrite=args.overwrite)
    zoo = args.model == "zoo"
    if args.clusters is not None and args.graph is None and (args.no_task or not zoo):
        raise InputError(
            "--clusters needs a connectome: the zoo task's (the default with --model zoo) or --graph"
        )
    check_lens_options(args)
    check_ray_options(args)
    start = time.perf_counter()
    documents = _read_documents(args)  # checked before the model loads
    from feature_lens.dashboard.site import build_dashboards, task_graph
    from feature_lens.graph import AttributionGraph

    for text in args.features:
        parse_feature(text)
    graph = AttributionGraph.load(args.graph) if args.graph is not None else None

    progress = not args.no_progress
    threads = args.threads if args.threads is not None else (1 if zoo else None)
    if threads is not None:
        import torch

        torch.set_num_threads(max(1, threads))
    lens = load_lens(args)
    prompts = _prompts(lens, args, documents)
    notes: list[str] = []
    if graph is None and zoo and not args.no_task:
        task = args.task or DEFAULT_TASK
        graph = task_graph(
            lens,
            task,
            n_prompts=args.task_prompts,
            method=args.graph_method,
            max_nodes=args.max_nodes,
            progress=progress,
        )
        notes.append(f"connectome: zoo task {task!r}, method {args.graph_method}")
    elif args.task is not None and not zoo:
        raise InputError("--task needs the embedded model (--model zoo)")
    top_k = args.top_k
    if top_k is None and not args.features:
        top_k = 8
    notes.append(f"{len(prompts)} prompts; upstream weights by {args.method}, downstream exact")
    with executor_from_args(args) as executor:
        dashboard = build_dashboards(
            lens,
            args.out,
            prompts,
            features=args.features,
            top_k=top_k,
            graph=graph,
            clusters=args.clusters,
            method=args.method,
            overwrite=args.overwrite,
            batch_size=args.batch_size,
            cache_dir=None if args.no_cache else cache_dir(args),
            notes=notes,
            progress=progress,
            executor=executor,
        )
    seconds = time.perf_counter() - start
    print(f"wrote {len(dashboard.features)} feature pages in {seconds:.1f} s")
    print(f"open: {dashboard.index.resolve().as_uri()}")
    if graph is not None:
        print(f"connectome: {(dashboard.out / 'connectome.html').resolve().as_uri()}")
    if dashboard.collapsed is not None:
        n = len(set(dashboard.clusters.values()))
        collapsed = (dashboard.out / "clusters" / "collapsed.html").resolve().as_uri()
        print(f"{n} clusters; collapsed connectome: {collapsed}")
    return 0
