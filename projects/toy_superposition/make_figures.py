"""Regenerate the full-size figures: ``python -m projects.toy_superposition.make_figures``.

Each figure is written to ``figures/<name>.png`` with its settings and key numbers in
``figures/<name>.json`` (both written atomically). ``--fast`` uses the CI sizes; ``--only`` picks
figures by name.
"""

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import torch
from matplotlib.figure import Figure

from projects.toy_superposition import experiments as E
from projects.toy_superposition import figures as F

FIGURES = Path(__file__).parent / "figures"


def _numbers(name: str, res: E.Result) -> dict[str, Any]:  # noqa: PLR0912 (one branch per figure)
    """The key numbers of each experiment, for the JSON beside its figure."""
    d = res.data
    if name == "intro":
        from projects.toy_superposition.analysis import n_represented

        return {
            act: {"n_represented": n_represented(d[act]["W"]).tolist()}
            for act in ("linear", "relu")
        }
    if name == "twenty_in_five":
        return {
            k: {"n_represented": d[k]["n_represented"], "loss": d[k]["loss"].tolist()}
            for k in ("tied", "untied")
        }
    if name == "twenty_in_five_recipes":
        return {
            kind: {
                rname: {
                    "n_represented_0.5": run.n_represented(0.5).T.tolist(),
                    "n_represented_0.25": run.n_represented(0.25).T.tolist(),
                    "loss": run.loss.T.tolist(),
                }
                for rname, run in d[kind].items()
            }
            for kind in ("tied", "untied")
        }
    if name == "mlne_vs_mse":
        return {
            k: {
                "n_directions": d[k]["n_directions"],
                "groups_eps_1e-5": d[k]["groups_eps_1e-5"],
                "norm_range": [[float(r.min()), float(r.max())] for r in d[k]["norms"]],
                "loss": d[k]["loss"].tolist(),
            }
            for k in ("mlne4", "mse")
        }
    if name == "vary_seed_groups":
        return {"counts": d["counts"], "loss": d["loss"].tolist()}
    if name == "seed_100_in_20":
        return {
            k: d[k] for k in ("feature_probability", "n_represented", "dims_per_feature", "loss")
        }
    if name == "phase":
        return {"agreement": d["agreement"], "analytic": d["analytic"], "empirical": d["empirical"]}
    if name.startswith("geometry"):
        return {
            "dims_per_feature": d["dims_per_feature"].tolist(),
            "d_fractions": list(E.D_FRACTIONS),
            "d_clusters": d["d_clusters"].tolist(),
            "n_represented": (d["norms"] > 0.5).sum(-1).tolist(),
            "feature_dimensionality": [
                [round(v, 4) for v in r] for r in d["feature_dimensionality"].tolist()
            ],
            "norms": [[round(v, 4) for v in r] for r in d["norms"].tolist()],
        }
    if name == "softmax_1d":
        return {"accuracy": d["accuracy"], "embedding": d["embedding"].tolist()}
    if name.startswith("one_hot"):
        return {
            str(n): {"n_represented": v["n_represented"], "n_directions": v["n_directions"]}
            for n, v in d.items()
        }
    if name == "hysteresis":
        return {
            k: {
                "sparsity": r.sparsities,
                "n_represented": r.n_represented,
                "mean_bias": [float(b.mean()) for b in r.bias],
            }
            for k, r in d.items()
        }
    if name == "computation":
        return {"accuracy": d["accuracy"].tolist()}
    if name == "hessian":
        return {
            "steps": d["steps"],
            "n_represented": d["n_represented"],
            "min_eig": d["eigenvalues"][:, 0].tolist(),
        }
    if name == "non_full_batch":
        return {str(b): {k: v.tolist() for k, v in r.items()} for b, r in d.items()}
    if name == "symmetric_nd":
        return {"counts": d["counts"].tolist()}
    if name == "sae_recovery":
        return {"scores": d["scores"], "chance_mmcs": d["chance_mmcs"]}
    return {}


JOBS: dict[str, tuple[Callable[..., E.Result], Callable[[E.Result], Figure]]] = {
    "intro": (E.intro, F.intro_figure),
    "twenty_in_five": (E.twenty_in_five, F.twenty_in_five_figure),
    "twenty_in_five_recipes": (E.twenty_in_five_recipes, F.recipes_figure),
    "seed_100_in_20": (E.seed_100_in_20, F.seed_100_in_20_figure),
    "mlne_vs_mse": (E.mlne_vs_mse, F.mlne_figure),
    "vary_seed_groups": (E.vary_seed_groups, F.vary_seed_figure),
    "phase": (E.phase_diagram, F.phase_figure),
    "geometry": (E.geometry, F.geometry_figure),
    "geometry_paper": (lambda **kw: E.geometry(recipe="paper", **kw), F.geometry_figure),
    "softmax_1d": (E.softmax_1d, F.softmax_1d_figure),
    "one_hot_2d_bias": (lambda **kw: E.one_hot_2d(True, True, **kw), F.one_hot_2d_figure),
    "one_hot_2d_untied_nobias": (
        lambda **kw: E.one_hot_2d(False, False, **kw),
        F.one_hot_2d_figure,
    ),
    "hysteresis": (E.bias_hysteresis, F.hysteresis_figure),
    "computation": (E.computation, F.computation_figure),
    "hessian": (E.hessian_over_training, F.hessian_figure),
    "non_full_batch": (E.non_full_batch, F.non_full_batch_figure),
    "symmetric_nd": (E.symmetric_nd, F.symmetric_nd_figure),
    "sae_recovery": (E.sae_recovery, F.sae_recovery_figure),
}


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    write(tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen experiments and save their figures and settings."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fast", action="store_true", help="CI sizes")
    p.add_argument("--only", nargs="*", choices=sorted(JOBS), help="figures to make (default: all)")
    p.add_argument("--out", type=Path, default=FIGURES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(JOBS):
        run, plot = JOBS[name]
        t0 = time.time()
        res = run(fast=args.fast, seed=args.seed, device=args.device)
        seconds = time.time() - t0
        fig = plot(res)
        _write_atomic(args.out / f"{name}.png", lambda f, fig=fig: fig.savefig(f, dpi=90))
        meta = {
            "settings": res.settings,
            "seed": args.seed,
            "fast": args.fast,
            "seconds": round(seconds, 1),
            "results": _numbers(name, res),
        }
        _write_atomic(
            args.out / f"{name}.json",
            lambda f, meta=meta: f.write_text(json.dumps(meta, indent=1, default=str)),
        )
        print(f"{name}: {seconds:.1f}s", flush=True)


if __name__ == "__main__":
    main()
