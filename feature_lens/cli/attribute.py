"""`feature-lens attribute`: attribute a metric to SAE features and write the graph (JSON + safetensors)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from feature_lens.cli.common import add_lens_options, load_lens, positive_int
from feature_lens.cli.ray_options import add_ray_options, check_ray_options, executor_from_args
from feature_lens.errors import InputError


def register(subparsers: Any) -> None:
    """Add the `attribute` sub-parser."""
    parser = subparsers.add_parser(
        "attribute",
        help="attribute a metric to SAE features and write the graph (JSON + safetensors)",
        description="Attribute a metric (logit difference or log-probability at the last token) "
        "to the Lens's nodes with one of the three methods, keep the strongest nodes, connect "
        "them, and write the graph (docs/graph-format.md).",
    )
    add_lens_options(parser)
    source = parser.add_argument_group("prompts (give --prompt, --prompts or --task)")
    source.add_argument("--prompt", action="append", help="a clean prompt (repeat for several)")
    source.add_argument("--corrupted", action="append", help="a corrupted prompt, one per --prompt")
    source.add_argument(
        "--prompts",
        type=Path,
        help="a text file of clean prompts, one a line (a prompt dataset)",
    )
    source.add_argument(
        "--corrupted-prompts",
        type=Path,
        help="a text file of corrupted prompts, one for each line of --prompts",
    )
    source.add_argument(
        "--task", help="a planted task of the embedded model (clean/corrupted pairs)"
    )
    source.add_argument("-n", "--n-prompts", type=int, default=4, help="prompts taken from --task")
    metric = parser.add_argument_group("metric")
    metric.add_argument(
        "--metric",
        choices=["logit-diff", "log-prob", "salient-logits"],
        default="logit-diff",
        help="salient-logits: circuit-tracer's targets (one prompt; no answers needed)",
    )
    metric.add_argument("--correct", help="answer token (text); with --task it is per prompt")
    metric.add_argument("--wrong", help="competing token for logit-diff (text)")
    method = parser.add_argument_group("method")
    method.add_argument(
        "--method", choices=["attribution", "exact", "ig", "direct"], default="attribution"
    )
    method.add_argument("--baseline", choices=["corrupted", "zero", "mean"], default=None)
    method.add_argument("--positions", choices=["keep", "sum"], default="keep")
    method.add_argument("--max-nodes", type=positive_int, default=64)
    method.add_argument("--ig-steps", type=positive_int, default=16)
    method.add_argument("--mlp", choices=["stop", "linear"], default="stop", help="direct only")
    method.add_argument("--no-edges", action="store_true", help="node effects only")
    method.add_argument(
        "--preselect",
        type=positive_int,
        default=None,
        metavar="K",
        help="exact/ig: score all nodes by attribution patching, run the method on the top K only",
    )
    method.add_argument(
        "--memory-budget",
        type=memory_size,
        default=None,
        metavar="SIZE",
        help="memory for one batched backward of edge targets, e.g. 512MB or 2GB (default 1GB)",
    )
    conventions = parser.add_argument_group("circuit-tracer's graph (docs/methods.md)")
    conventions.add_argument(
        "--exclude-bos", action="store_true", help="no feature or error nodes at position 0"
    )
    conventions.add_argument(
        "--token-nodes",
        choices=["resid_pre", "embed"],
        default="resid_pre",
        help="embed: a token node is its token embedding alone (needs --baseline zero)",
    )
    conventions.add_argument(
        "--max-feature-nodes",
        type=positive_int,
        default=None,
        help="one prompt's graph: every error and token node and this many features, chosen "
        "greedily by influence (replaces --max-nodes)",
    )
    conventions.add_argument(
        "--prune",
        type=float,
        nargs=2,
        default=None,
        metavar=("NODE", "EDGE"),
        help="keep the nodes and edges holding these shares of the influence, e.g. 0.8 0.98",
    )
    add_ray_options(parser, "prompts sharded across workers")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output JSON path (the tensors go beside it, NAME.safetensors)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.set_defaults(func=run)


_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30}


def memory_size(text: str) -> int:
    """Bytes from a size such as `2GB`, `512MB` or `1000000` (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|B)?\s*", text.upper())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a memory size; write e.g. 512MB, 2GB or a number of bytes"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


def _token_id(lens: Any, text: str) -> int:
    ids = lens.model.to_tokens(text, prepend_bos=False)[0]
    if len(ids) != 1:
        raise InputError(f"{text!r} is {len(ids)} tokens; give a single-token answer")
    return int(ids[0])


def _read_lines(path: Path, flag: str) -> list[str]:
    if not path.is_file():
        raise InputError(f"{flag} {str(path)!r}: no such file; give a text file, one prompt a line")
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{flag} {str(path)!r} has no prompts; write one prompt a line")
    return lines


def _check_prompt_options(args: argparse.Namespace) -> None:
    """What the prompt options say, checked without the model (a --prompts file becomes
    --prompt values)."""
    if args.prompts is not None:
        if args.prompt or args.task:
            raise InputError("give prompts one way: --prompts FILE, --prompt or --task")
        args.prompt = _read_lines(args.prompts, "--prompts")
        if args.corrupted_prompts is not None:
            args.corrupted = _read_lines(args.corrupted_prompts, "--corrupted-prompts")
    elif args.corrupted_prompts is not None:
        raise InputError("--corrupted-prompts needs --prompts FILE")
    if args.task:
        if args.model != "zoo":
            raise InputError(
                "--task uses the embedded model's planted tasks; use it with --model zoo"
            )
    elif not args.prompt:
        raise InputError(
            "give prompts with --prompt (and --corrupted), or --task for a planted task"
        )
    elif args.corrupted and len(args.corrupted) != len(args.prompt):
        raise InputError(
            f"{len(args.corrupted)} --corrupted for {len(args.prompt)} --prompt; give one each"
        )


def run(args: argparse.Namespace) -> int:
    """Build the prompt set and metric, attribute, save."""
    from feature_lens.attribution import LogitDiff, LogProb, PromptSet, attribute
    from feature_lens.outputs import check_file_target

    check_file_target(args.out, overwrite=args.overwrite)
    _check_prompt_options(args)  # before the model loads
    check_ray_options(args)
    lens = load_lens(args)
    if args.task:
        from feature_lens.zoo import task_prompts

        pairs = task_prompts(args.task, args.n_prompts)
        import torch

        prompts = PromptSet.build(
            lens, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
        )
    else:
        answers = None
        if args.correct:
            row = [_token_id(lens, args.correct)] + (
                [_token_id(lens, args.wrong)] if args.wrong else []
            )
            answers = [row] * len(args.prompt)
        prompts = PromptSet.build(lens, args.prompt, args.corrupted, answers)
    named: dict[str, Any] = {"logit-diff": LogitDiff, "log-prob": LogProb}
    metric: Any = named[args.metric]() if args.metric in named else args.metric
    with executor_from_args(args) as executor:
        graph = attribute(
            lens,
            prompts,
            metric,
            method=args.method,
            baseline=args.baseline,
            positions=args.positions,
            max_nodes=args.max_nodes,
            edges=not args.no_edges,
            ig_steps=args.ig_steps,
            mlp=args.mlp,
            batch_size=args.batch_size,
            progress=True,
            memory_budget=args.memory_budget,
            preselect=args.preselect,
            exclude_bos=args.exclude_bos,
            token_nodes=args.token_nodes,
            max_feature_nodes=args.max_feature_nodes,
            prune=None if args.prune is None else (args.prune[0], args.prune[1]),
            executor=executor,
        )
    path = graph.save(args.out, overwrite=args.overwrite)
    n_features = sum(1 for n in graph.nodes.values() if n.kind == "feature")
    print(
        f"wrote {path}: {len(graph.nodes) - 1} nodes ({n_features} features), {len(graph.edges)} "
        f"edges; metric {graph.metric} = {graph.settings['metric_clean']:.4f} clean"
    )
    if "replacement_score" in graph.settings:
        print(
            f"replacement score {graph.settings['replacement_score']:.4f}, completeness score "
            f"{graph.settings['completeness_score']:.4f}"
        )
    return 0
