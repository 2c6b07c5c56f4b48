"""The seed's settings on any TransformerLens model with a folder of checkpoints, plus circuit edges.

python -m projects.circuit_development.seed_run [--checkpoints FOLDER] [--site HOOK ...]
    [--steps N ...] [--edge-steps N ...] [--tokens TOKENS.pt] [--prompts PROMPTS.pt]
    [--artifacts DIR] [--results DIR]

Stages, each resumable (finished work on disk is skipped):

1. **saes**: at every checkpoint of `CheckpointFolder(FOLDER)` (or the `--steps` given), one TopK
   SAE per site (the project's `SaeSettings`), trained by `feature_lens.training.train_sae` on rows
   from an `ActivationBuffer`; every checkpoint sees the same token stream and SAE seed. A second
   seed at the last checkpoint is the control.
2. **matching**: each checkpoint's SAE against the last one's on shared held-out tokens, the seed's
   way (`seed_matching`: activation cosine distance, all features assigned, dead = -1, matched at
   distance thresholds 0.1-0.9, over all features) and ours (`matching`: Pearson correlation over
   live features, similarity thresholds 0.5-0.9), with the seed's similarity histograms and the
   seed's feature visualisation (`feature_vis`) for one checkpoint against the last.
3. **edges**: per task and `--edge-steps` checkpoint, the circuit with edges
   (`attribute(method="attribution", positions="sum", edges=True)`), then each circuit's edges
   mapped into the last checkpoint's feature indices through the seed's matching (distance <=
   `edge_distance`) and compared with the last circuit's (`edges.edge_persistence`).
4. **figures**.

Tokens: the zoo's corpus by default (zoo checkpoints); for another model, `--tokens` names a
`torch.save`d LongTensor `[n, seq]` of token ids (BOS first if the model expects one): its first
`n_match_contexts` rows are held out for matching, the rest stream (cycled) into the buffer.
Prompts: the zoo's four tasks by default; otherwise `--prompts` names a `torch.save`d dict with
`clean`, `corrupted` (LongTensor `[n, seq]`) and `answers` (`[n, 2]`: correct, wrong token ids).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from feature_lens.attribution import LogitDiff, PromptSet, attribute
from feature_lens.lens import Lens
from feature_lens.training.buffer import ActivationBuffer
from feature_lens.training.sae import train_sae
from projects.circuit_development.checkpoint_folder import CheckpointFolder
from projects.circuit_development.config import SaeSettings
from projects.circuit_development.edges import (
    Edge,
    edge_persistence,
    graph_edges,
    map_edges,
)
from projects.circuit_development.feature_vis import feature_card, render_pairs, write_atomic
from projects.circuit_development.matching import feature_activations, match_features
from projects.circuit_development.seed_matching import (
    SEED_DISTANCE_THRESHOLDS,
    SEED_HISTOGRAM_EDGES,
    decoder_pair_cosine,
    seed_match,
    similarity_histogram,
)
from projects.circuit_development.stages import write_csv

HERE = Path(__file__).resolve().parent
STAGES = ("saes", "matching", "edges", "figures")
DONE_FILE = "done.json"


@dataclass(frozen=True)
class SeedRunConfig:
    """Settings of the seed-settings run (defaults: the committed run on the zoo's checkpoints)."""

    sites: tuple[str, ...] = ("blocks.1.hook_resid_pre", "blocks.2.hook_resid_pre")
    saes: SaeSettings = field(default_factory=SaeSettings)
    n_match_contexts: int = 64
    dead_rule: str = "partner"
    distance_thresholds: tuple[float, ...] = SEED_DISTANCE_THRESHOLDS
    correlation_thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
    edge_steps: tuple[int, ...] = (297, 522, 918, 1300, 1450, 1615, 2842, 5000)
    n_edge_prompts: int = 16
    edge_nodes: int = 48
    edge_top: int = 32
    edge_distance: float = 0.3
    vis_step: int = 918
    vis_pairs: int = 10
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# token and prompt sources


def _zoo_tokens(n: int, seed: int, split: str) -> Tensor:
    from feature_lens.zoo.corpus import corpus_tokens

    return corpus_tokens(n, seed=seed, split=split)  # type: ignore[arg-type]


def token_stream(tokens: Tensor | None, batch: int, seed: int, held_out: int) -> Iterator[Tensor]:
    """Training batches: the zoo corpus's train split, or the rows of `tokens` after the held-out
    ones, cycled in a seeded order."""
    if tokens is None:
        from feature_lens.zoo.corpus import corpus_batches

        yield from corpus_batches(batch, seed=seed + 1, split="train")
        return
    rows = tokens[held_out:]
    if rows.shape[0] == 0:
        raise ValueError(f"--tokens has only {tokens.shape[0]} rows, all held out for matching")
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(rows.shape[0], generator=generator)
        for start in range(0, rows.shape[0] - batch + 1 if rows.shape[0] >= batch else 1, batch):
            yield rows[order[start : start + batch]]


def match_tokens(tokens: Tensor | None, config: SeedRunConfig) -> Tensor:
    """The shared held-out tokens the matching encodes."""
    if tokens is None:
        return _zoo_tokens(config.n_match_contexts, config.seed, "test")
    return tokens[: config.n_match_contexts]


def task_prompts(prompts_file: Path | None, n: int, seed: int) -> dict[str, PromptSet]:
    """Task name -> prompts: the zoo's four tasks, or one "custom" task from `prompts_file`."""
    if prompts_file is None:
        from feature_lens.zoo.tasks import TASKS
        from projects.circuit_development.circuits import task_prompt_set

        return {task: task_prompt_set(task, n, seed=seed) for task in TASKS}
    data = torch.load(prompts_file, weights_only=True)
    return {"custom": PromptSet(data["clean"][:n], data["corrupted"][:n], data["answers"][:n])}


# ---------------------------------------------------------------------------------------------
# stage 1: SAEs


def sae_folder(artifacts: Path, step: int, site: str, *, control: bool = False) -> Path:
    """Where the SAE of `site` at `step` is saved."""
    return artifacts / f"step_{step:05d}" / ("control" if control else "saes") / site


def train_saes(
    folder: CheckpointFolder,
    artifacts: Path,
    config: SeedRunConfig,
    steps: Sequence[int],
    tokens: Tensor | None,
) -> None:
    """One SAE per site at every step (and the control at the last), skipping finished ones."""
    settings = config.saes
    jobs = [(s, False) for s in steps] + [(steps[-1], True)]
    for step, control in jobs:
        out = artifacts / f"step_{step:05d}" / ("control" if control else "saes")
        if (out / DONE_FILE).is_file():
            continue
        if out.exists():
            shutil.rmtree(out)
        model = folder.load(step)
        buffer = ActivationBuffer(
            model,
            token_stream(tokens, settings.contexts_per_batch, config.seed, config.n_match_contexts),
            config.sites,
            capacity=settings.buffer_capacity,
            batch_size=min(4096, settings.buffer_capacity // 2),
            seed=config.seed,
            device="cpu",
        )
        data = buffer.take(settings.n_rows)
        start = time.perf_counter()
        for i, site in enumerate(config.sites):
            sae = train_sae(
                data[site],
                d_sae=settings.expansion * int(model.cfg.d_model),
                total_samples=settings.total_samples,
                architecture="topk",
                k=settings.k,
                batch_size=settings.batch_size,
                lr=settings.lr,
                seed=config.seed + (200 if control else 100) + i,
                hook_name=site,
                model_name=str(model.cfg.model_name),
            )
            sae.save_model(str(out / site))
        record = {
            "seconds": round(time.perf_counter() - start, 1),
            "tokens_seen": buffer.tokens_seen,
        }
        (out / DONE_FILE).write_text(json.dumps(record) + "\n")
        print(f"saes step {step}{' (control)' if control else ''}: {record}", flush=True)


def load_saes(
    artifacts: Path, step: int, sites: Sequence[str], *, control: bool = False
) -> list[Any]:
    """The saved SAEs of one checkpoint, in site order."""
    from sae_lens import SAE

    return [SAE.load_from_disk(str(sae_folder(artifacts, step, s, control=control))) for s in sites]


# ---------------------------------------------------------------------------------------------
# stage 2: matching


def run_matching(
    folder: CheckpointFolder,
    artifacts: Path,
    results: Path,
    config: SeedRunConfig,
    steps: Sequence[int],
    tokens: Tensor | None,
) -> None:
    """`seed_matching.csv`, `seed_histograms.csv`, `seed_pairs.json` (artifacts), `feature_vis.html`."""
    shared = match_tokens(tokens, config)
    last = steps[-1]
    acts: dict[tuple[int, bool], dict[str, Tensor]] = {}
    decoders: dict[tuple[int, bool], dict[str, Tensor]] = {}
    for step, control in [(s, False) for s in steps] + [(last, True)]:
        model = folder.load(step)
        saes = load_saes(artifacts, step, config.sites, control=control)
        acts[step, control] = {
            site: feature_activations(model, sae, site, shared)
            for site, sae in zip(config.sites, saes, strict=True)
        }
        decoders[step, control] = {
            site: sae.W_dec.detach() for site, sae in zip(config.sites, saes, strict=True)
        }
    rows: list[dict[str, Any]] = []
    hist_rows: list[dict[str, Any]] = []
    pairs: dict[str, dict[str, list[list[float]]]] = {}
    comparisons = [(s, False) for s in steps] + [(last, True)]
    for step, control in comparisons:
        label = f"{step}c" if control else str(step)
        for site in config.sites:
            a, b = acts[step, control][site], acts[last, False][site]
            seed_rule = seed_match(a, b, dead_rule=config.dead_rule)  # type: ignore[arg-type]
            same_index = seed_match(a, b, dead_rule="same_index")
            ours = match_features(
                "activation",
                W_dec_a=decoders[step, control][site],
                W_dec_b=decoders[last, False][site],
                acts_a=a,
                acts_b=b,
            )
            base = {"site": site, "step": step, "control": int(control)}
            for t in config.distance_thresholds:
                rows.append(
                    base
                    | {
                        "recipe": "seed",
                        "threshold": t,
                        "matched_fraction": seed_rule.matched_fraction(t),
                        "matched_fraction_same_index": same_index.matched_fraction(t),
                        "dead_fraction": float((~seed_rule.live).mean()),
                    }
                )
            for t in config.correlation_thresholds:
                rows.append(
                    base
                    | {
                        "recipe": "project",
                        "threshold": t,
                        "matched_fraction": ours.matched_fraction(t),
                        "matched_fraction_same_index": float("nan"),
                        "dead_fraction": 1 - ours.n_live_a / a.shape[1],
                    }
                )
            similarity = np.where(seed_rule.live, 1 - seed_rule.distance, np.nan)
            dec = decoder_pair_cosine(
                decoders[step, control][site], decoders[last, False][site], seed_rule.partner
            )
            dec = np.where(seed_rule.live, dec, np.nan)
            for kind, values in (("activation", similarity), ("decoder", dec)):
                counts = similarity_histogram(values[~np.isnan(values)])
                for lo, count in zip(SEED_HISTOGRAM_EDGES[:-1], counts, strict=True):
                    hist_rows.append(
                        base | {"kind": kind, "bin_lo": float(lo), "count": int(count)}
                    )
            pairs.setdefault(site, {})[label] = [
                [int(i), int(seed_rule.partner[i]), round(float(seed_rule.distance[i]), 5)]
                for i in range(len(seed_rule.distance))
            ]
    write_csv(results / "seed_matching.csv", rows)
    write_csv(results / "seed_histograms.csv", hist_rows)
    write_atomic(artifacts / "seed_pairs.json", json.dumps(pairs) + "\n")
    if config.vis_step in steps and config.vis_step != last:
        write_feature_vis(
            folder,
            results,
            config,
            shared,
            acts[config.vis_step, False],
            acts[last, False],
            pairs,
            last,
        )


def write_feature_vis(
    folder: CheckpointFolder,
    results: Path,
    config: SeedRunConfig,
    shared: Tensor,
    acts_a: dict[str, Tensor],
    acts_b: dict[str, Tensor],
    pairs: dict[str, dict[str, list[list[float]]]],
    last: int,
) -> None:
    """The seed's visualisation: the `vis_pairs` closest live pairs at the last site."""
    site = config.sites[-1]
    model = folder.load(config.vis_step)
    vocab = model.tokenizer.convert_ids_to_tokens(list(range(int(model.cfg.d_vocab))))
    str_tokens = [str(t) for t in vocab]
    live = [p for p in pairs[site][str(config.vis_step)] if p[2] >= 0]
    live.sort(key=lambda p: (p[2], p[0]))
    cards = [
        (
            f"step {config.vis_step} feature {i} -> step {last} feature {j}: distance {d:.4f}",
            feature_card(f"step {config.vis_step} #{i}", acts_a[site][:, i], shared, str_tokens),
            feature_card(f"step {last} #{j}", acts_b[site][:, j], shared, str_tokens),
        )
        for i, j, d in ((int(p[0]), int(p[1]), float(p[2])) for p in live[: config.vis_pairs])
    ]
    title = f"{site}: the {len(cards)} closest matched features, step {config.vis_step} vs {last}"
    write_atomic(results / "feature_vis.html", render_pairs(title, cards))


# ---------------------------------------------------------------------------------------------
# stage 3: edges


def _edges_json(edges: dict[Edge, float]) -> list[list[Any]]:
    return [[list(s), list(t), w] for (s, t), w in sorted(edges.items(), key=repr)]


def _edges_from_json(rows: list[list[Any]]) -> dict[Edge, float]:
    return {(tuple(s), tuple(t)): float(w) for s, t, w in rows}  # type: ignore[misc]


def run_edges(
    folder: CheckpointFolder,
    artifacts: Path,
    results: Path,
    config: SeedRunConfig,
    steps: Sequence[int],
    prompts_file: Path | None,
) -> None:
    """Circuits with edges at the edge steps (cached per step), then `seed_edges.csv`."""
    last = steps[-1]
    edge_steps = [s for s in config.edge_steps if s in steps]
    if last not in edge_steps:
        edge_steps.append(last)
    tasks = task_prompts(prompts_file, config.n_edge_prompts, config.seed)
    cache = artifacts / "edges"
    cache.mkdir(parents=True, exist_ok=True)
    graphs: dict[str, dict[str, dict[Edge, float]]] = {}
    jobs = [(s, False) for s in edge_steps] + [(last, True)]
    for step, control in jobs:
        label = f"{step}c" if control else str(step)
        path = cache / f"step_{label}.json"
        if not path.is_file():
            model = folder.load(step)
            lens = Lens(model, load_saes(artifacts, step, config.sites, control=control))
            record: dict[str, Any] = {}
            for task, prompts in tasks.items():
                graph = attribute(
                    lens,
                    prompts,
                    LogitDiff(),
                    method="attribution",
                    positions="sum",
                    max_nodes=config.edge_nodes,
                    edges=True,
                    progress=False,
                )
                record[task] = {
                    "edges": _edges_json(graph_edges(graph)),
                    "metric_clean": float(graph.settings["metric_clean"]),
                    "metric_baseline": float(graph.settings["metric_baseline"]),
                }
            write_atomic(path, json.dumps(record) + "\n")
            print(f"edges step {label}: done", flush=True)
        graphs[label] = {
            task: _edges_from_json(r["edges"]) for task, r in json.loads(path.read_text()).items()
        }
    pairs = json.loads((artifacts / "seed_pairs.json").read_text())
    rows: list[dict[str, Any]] = []
    for label in [str(s) for s in edge_steps] + [f"{last}c"]:
        matches = {
            site: {int(i): int(j) for i, j, d in by_step[label] if 0 <= d <= config.edge_distance}
            for site, by_step in pairs.items()
        }
        for task, edges in graphs[label].items():
            final = graphs[str(last)][task]
            mapped = map_edges(edges, matches)
            score = edge_persistence(mapped, final, top=config.edge_top)
            ff = {e: w for e, w in final.items() if e[0][0] == "feature" and e[1][0] == "feature"}
            mapped_ff = {
                e: w for e, w in mapped.items() if e[0][0] == "feature" and e[1][0] == "feature"
            }
            ff_score = edge_persistence(mapped_ff, ff, top=config.edge_top)
            rows.append(
                {
                    "step": int(label.rstrip("c")),
                    "control": int(label.endswith("c")),
                    "task": task,
                    "n_edges": len(edges),
                    "n_mapped": len(mapped),
                    **score,
                    "feature_edges_persisted": ff_score["persisted"],
                    "feature_edges_jaccard": ff_score["weighted_jaccard"],
                    "n_feature_edges_final": len(ff),
                }
            )
    write_csv(results / "seed_edges.csv", rows)


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the stages (all by default), printing their wall time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoints", type=Path, default=HERE / "artifacts" / "checkpoints")
    parser.add_argument("--site", action="append")
    parser.add_argument("--steps", type=int, nargs="+")
    parser.add_argument("--edge-steps", type=int, nargs="+")
    parser.add_argument("--tokens", type=Path)
    parser.add_argument("--prompts", type=Path)
    parser.add_argument("--artifacts", type=Path, default=HERE / "artifacts" / "seed_run")
    parser.add_argument("--results", type=Path, default=HERE / "results" / "seed_run")
    parser.add_argument("--stage", choices=STAGES, action="append")
    args = parser.parse_args(argv)
    config = SeedRunConfig()
    if args.site:
        config = SeedRunConfig(**{**_fields(config), "sites": tuple(args.site)})
    if args.edge_steps:
        config = SeedRunConfig(**{**_fields(config), "edge_steps": tuple(args.edge_steps)})
    folder = CheckpointFolder.open(args.checkpoints)
    steps = sorted(args.steps) if args.steps else folder.steps
    missing = [s for s in steps if s not in folder.steps]
    if missing:
        parser.error(f"--steps {missing} not in {args.checkpoints} (present: {folder.steps})")
    tokens = torch.load(args.tokens, weights_only=True) if args.tokens else None
    torch.set_num_threads(1)
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    (results / "config.json").write_text(
        json.dumps({**asdict(config), "steps": steps}, indent=2) + "\n"
    )
    training = folder.root / "training.json"  # written by checkpoints.train_checkpoints
    if training.is_file():
        write_csv(
            results / "training_evaluations.csv", json.loads(training.read_text())["evaluations"]
        )
    for stage in args.stage or list(STAGES):
        start = time.perf_counter()
        if stage == "saes":
            train_saes(folder, args.artifacts, config, steps, tokens)
        elif stage == "matching":
            run_matching(folder, args.artifacts, results, config, steps, tokens)
        elif stage == "edges":
            run_edges(folder, args.artifacts, results, config, steps, args.prompts)
        elif stage == "figures":
            from projects.circuit_development.seed_figures import draw_seed_figures

            draw_seed_figures(results)
        print(f"[{stage}] {time.perf_counter() - start:.1f} s", flush=True)


def _fields(config: SeedRunConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in config.__dataclass_fields__}


if __name__ == "__main__":
    main()
