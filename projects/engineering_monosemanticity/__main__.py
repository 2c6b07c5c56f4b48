"""Command line: ``python -m projects.engineering_monosemanticity [flags]``.

Modes:

1. A custom sweep with the seed's flags (defaults: ``RunConfig``'s, i.e. the seed's ``main.py``'s)::

       python -m projects.engineering_monosemanticity --N 256 --m 32 --k 612 --eps 0.015625 \\
           --log2_batch_size 6 --learning_rate 0.03 --log2_training_steps 13 --sample_kind equal \\
           --task autoencoder --decay 0 --initial_bias 0 --nonlinearity ReLU --reg 0 \\
           --sweep_var learning_rate --sweep_values 0.001 0.003 --file_name LR1_reduced --device cpu

   writes ``results/LR1_reduced/learning_rate=0.001__<digest>.json`` etc.

2. Named batches of Table 1 at a size preset (``cpu``, ``paper``, ``tiny``)::

       python -m projects.engineering_monosemanticity --batch LR1 K0 --preset cpu
       python -m projects.engineering_monosemanticity --batch all --preset paper --device cuda

   writes ``results/<preset>/<batch>/...``. ``--list`` prints the batches and presets.

3. ``--report``: draw the figures and the HTML browser from everything under ``--results_dir``;
   ``--lr_sweep cpu/LR1``: the seed's learning-rate sweep script for one sweep;
   ``--rerun FILE.json``: train a stored run again and say where it departs from the record.

Runs already on disk (same full config) are skipped, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from projects.engineering_monosemanticity.config import (
    NONLINEARITIES,
    SAMPLE_KINDS,
    TASKS,
    RunConfig,
)
from projects.engineering_monosemanticity.runner import run_sweep
from projects.engineering_monosemanticity.sweeps import PRESETS, TABLE1

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = PROJECT_DIR / "results"
INT_FIELDS = {"N", "m", "k", "log2_batch_size", "log2_training_steps", "lr_period", "seed"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (defaults shown in ``--help``)."""
    d = RunConfig()
    p = argparse.ArgumentParser(
        prog="python -m projects.engineering_monosemanticity",
        description="Engineering Monosemanticity toy-model sweeps (Jermyn et al. 2022).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("run settings (the seed's flags)")
    g.add_argument("--N", type=int, default=d.N, help="number of sparse features")
    g.add_argument("--m", type=int, default=d.m, help="embedding dimension")
    g.add_argument("--k", type=int, default=d.k, help="hidden neurons")
    g.add_argument("--eps", type=float, default=d.eps, help="feature probability")
    g.add_argument("--log2_batch_size", type=int, default=d.log2_batch_size, help="log2 batch")
    g.add_argument("--learning_rate", type=float, default=d.learning_rate, help="peak LAMB rate")
    g.add_argument(
        "--log2_training_steps", type=int, default=d.log2_training_steps, help="log2 steps"
    )
    g.add_argument("--sample_kind", default=d.sample_kind, choices=[*SAMPLE_KINDS, "power_law"])
    g.add_argument("--task", default=d.task, choices=[*TASKS, "random_proj", "decoder"])
    g.add_argument("--decay", type=float, default=d.decay, help="bias decay rate")
    g.add_argument("--initial_bias", type=float, default=d.initial_bias, help="bias offset")
    g.add_argument("--nonlinearity", default=d.nonlinearity, choices=NONLINEARITIES)
    g.add_argument("--reg", type=float, default=d.reg, help="L1 penalty on activations")
    g.add_argument("--lr_period", type=int, default=d.lr_period, help="cosine T_max (steps)")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--sweep_var", default=None, help="RunConfig field to sweep")
    g.add_argument("--sweep_values", type=float, nargs="+", default=None)
    g.add_argument("--file_name", default="custom", help="results sub-folder of a custom sweep")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")

    t = p.add_argument_group("Table 1 batches")
    t.add_argument("--batch", nargs="+", default=None, help="batch names, or 'all'")
    t.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    t.add_argument("--list", action="store_true", help="list batches and presets, then exit")

    o = p.add_argument_group("output")
    o.add_argument("--results_dir", type=Path, default=DEFAULT_RESULTS)
    o.add_argument("--save_weights", action="store_true", help="also save .pt state dicts")
    o.add_argument("--report", action="store_true", help="draw figures + report.html, then exit")
    o.add_argument("--summary", action="store_true", help="print a markdown summary, then exit")
    o.add_argument(
        "--lr_sweep",
        default=None,
        metavar="SWEEP",
        help="draw one learning-rate sweep (e.g. cpu/LR1) as the seed's script does, then exit",
    )
    o.add_argument(
        "--lr_values", type=float, nargs="+", default=None, help="learning rates --lr_sweep expects"
    )
    o.add_argument("--rerun", type=Path, default=None, metavar="JSON",
                   help="train a stored run again and compare with its record, then exit")  # fmt: skip
    o.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _print_list() -> None:
    for s in TABLE1.values():
        values = "; ".join(f"{k} in {list(v)}" for k, v in s.variables.items())
        print(f"{s.name:4s} {s.description}  [{values}]")
    for preset in PRESETS.values():
        print(f"preset {preset}")


def _run_tool(args: argparse.Namespace) -> bool:
    """The modes that read results instead of training; True when one ran."""
    if args.summary:
        from projects.engineering_monosemanticity.report import markdown_summary

        print(markdown_summary(args.results_dir))
        return True
    if args.rerun:
        from projects.engineering_monosemanticity.rerun import rerun_record

        print(rerun_record(args.rerun).summary())
        return True
    if args.lr_sweep:
        from projects.engineering_monosemanticity.report import draw_lr_sweep

        paths, missing = draw_lr_sweep(args.results_dir, args.lr_sweep, args.lr_values)
        for lr in missing:
            print(f"learning_rate={lr:g} not found in {args.lr_sweep}")
        for path in paths:
            print(f"wrote {path}")
        return True
    if args.report:
        from projects.engineering_monosemanticity.report import build_report

        out = build_report(args.results_dir)
        print(f"wrote {out}")
        return True
    return False


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m projects.engineering_monosemanticity``."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.list:
        _print_list()
        return
    if _run_tool(args):
        return
    if args.batch:
        names = list(TABLE1) if args.batch == ["all"] else args.batch
        unknown = [n for n in names if n not in TABLE1]
        if unknown:
            raise SystemExit(f"unknown batch {unknown}; choose from {list(TABLE1)} or 'all'")
        preset = PRESETS[args.preset]
        for name in names:
            sweep = TABLE1[name]
            configs = list(preset.configs(sweep, seed=args.seed))
            run_sweep(
                f"{preset.name}/{name}",
                configs,
                sweep.sweep_vars,
                args.results_dir,
                args.device,
                args.save_weights,
                not args.quiet,
                args.threads,
            )
        return

    fields = {f: getattr(args, f) for f in RunConfig().to_dict()}
    base = RunConfig(**fields)
    if args.sweep_var is None:
        configs, sweep_vars = [base], ()
    else:
        if args.sweep_var not in fields:
            raise SystemExit(f"--sweep_var {args.sweep_var!r} is not one of {sorted(fields)}")
        if not args.sweep_values:
            raise SystemExit("--sweep_var needs --sweep_values")
        cast = int if args.sweep_var in INT_FIELDS else float
        configs = [base.replace(**{args.sweep_var: cast(v)}) for v in args.sweep_values]
        sweep_vars = (args.sweep_var,)
    run_sweep(
        args.file_name,
        configs,
        sweep_vars,
        args.results_dir,
        args.device,
        args.save_weights,
        not args.quiet,
        args.threads,
    )


if __name__ == "__main__":
    main()
