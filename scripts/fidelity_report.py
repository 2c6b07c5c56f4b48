"""How well attribution patching and integrated gradients track exact patching on the embedded
model's planted tasks, and the circuit each method finds. Writes docs/fidelity.md.

    python scripts/fidelity_report.py [--prompts 8] [--out docs/fidelity.md]

For each task: every node whose clean value differs from its corrupted value is scored by exact
patching (the reference), attribution patching and IG; we report Pearson correlation with exact,
top-k overlap of the nodes ranked by |effect|, and the faithfulness (mean ablation over the corpus)
of each method's top-k circuit, with the circuit itself.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from feature_lens import Lens
from feature_lens.attribution import (
    LogitDiff,
    Node,
    PromptSet,
    candidate_nodes,
    exact_node_effects,
    faithfulness,
    gradient_node_effects,
    integrated_gradient_node_effects,
    prompt_states,
)
from feature_lens.zoo import TASKS, corpus_tokens, task_prompts

METHODS = ("exact", "attribution", "ig")
SIZES = (20, 100, 300)
ABLATION = "corrupted"  # the baseline the scores are computed against


def _scores(lens: Lens, prompts: PromptSet, steps: int) -> dict[str, dict[Node, float]]:
    states = prompt_states(lens, prompts, "corrupted")
    totals: dict[str, dict[Node, float]] = {m: defaultdict(float) for m in METHODS}
    metric = LogitDiff()
    for state in states:
        nodes = candidate_nodes(lens, state, "keep")
        runs = {
            "exact": exact_node_effects(lens, state, metric, nodes, batch_size=128),
            "attribution": gradient_node_effects(lens, state, metric, nodes),
            "ig": integrated_gradient_node_effects(lens, state, metric, nodes, steps=steps),
        }
        for method, scores in runs.items():
            for node, score in scores.items():
                totals[method][node] += score / len(prompts)
    return totals


def _pearson(a: list[float], b: list[float]) -> float:
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    return float((x @ y) / (x.norm() * y.norm()).clamp_min(1e-30))


def _top(scores: dict[Node, float], k: int) -> list[Node]:
    return sorted(scores, key=lambda n: -abs(scores[n]))[:k]


def main() -> None:
    """Run the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("docs/fidelity.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    lens = Lens.load()
    mean_tokens = corpus_tokens(64, seed=123, split="test")
    lines = [
        "# Fidelity of attribution patching and integrated gradients on the embedded model",
        "",
        f"Made by `python scripts/fidelity_report.py --prompts {args.prompts} --steps {args.steps} --k {args.k}`.",
        "Per task: every node (feature, error term, token; per position) whose clean and corrupted",
        "values differ, scored by each method with the corrupted baseline, averaged over the task's",
        f"first {args.prompts} held-out prompts. *r*: Pearson correlation with exact patching over all",
        f"those nodes; *top-{args.k}*: overlap of the {args.k} nodes with the largest |effect| with exact",
        f"patching's {args.k}; *faithfulness at n*: the method's n strongest feature/error nodes kept, every",
        "other feature and error node set to its value on the corrupted prompt (the baseline the scores",
        "use), as",
        "(m(circuit) - m(empty)) / (m(full) - m(empty)); shown as exact / attribution / IG.",
        "",
        f"| task | nodes | metric (clean / corrupted) | r attribution | r IG | top-{args.k} attribution | top-{args.k} IG | "
        + " | ".join(f"faithfulness at {n}" for n in SIZES)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(SIZES),
    ]
    circuits: list[str] = []
    for task in TASKS:
        pairs = task_prompts(task, args.prompts)
        prompts = PromptSet.build(
            lens, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
        )
        scores = _scores(lens, prompts, args.steps)
        nodes = sorted(scores["exact"])
        exact = [scores["exact"][n] for n in nodes]
        r = {
            m: _pearson([scores[m].get(n, 0.0) for n in nodes], exact)
            for m in ("attribution", "ig")
        }
        top_exact = set(_top(scores["exact"], args.k))
        overlap = {
            m: len(top_exact & set(_top(scores[m], args.k))) / args.k for m in ("attribution", "ig")
        }
        faith: dict[str, list[float]] = {}
        for method in METHODS:
            ranked = [n for n in _top(scores[method], len(nodes)) if n.kind in ("feature", "error")]
            faith[method] = [
                faithfulness(
                    lens,
                    prompts,
                    LogitDiff(),
                    ranked[:size],
                    ablation=ABLATION,
                    mean_tokens=mean_tokens,
                ).score
                for size in SIZES
            ]
        with torch.no_grad():
            clean_m = float(LogitDiff()(lens.forward(prompts.clean), prompts.answers).mean())
            corrupt_m = float(LogitDiff()(lens.forward(prompts.corrupted), prompts.answers).mean())  # type: ignore[arg-type]
        lines.append(
            f"| {task} | {len(nodes)} | {clean_m:.2f} / {corrupt_m:.2f} | {r['attribution']:.3f} | {r['ig']:.3f} | "
            f"{overlap['attribution']:.2f} | {overlap['ig']:.2f} | "
            + " | ".join(
                " / ".join(f"{faith[m][i]:.2f}" for m in METHODS) for i in range(len(SIZES))
            )
            + " |"
        )
        circuits.append(
            f"\n### {task}\n\n| rank | exact | effect | attribution | effect | IG | effect |\n|---|---|---|---|---|---|---|"
        )
        tops = {m: _top(scores[m], 8) for m in METHODS}
        for rank in range(8):
            cells = []
            for method in METHODS:
                node = tops[method][rank]
                cells += [f"`{node.id}`", f"{scores[method][node]:+.3f}"]
            circuits.append(f"| {rank + 1} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines += ["", "## The circuit each method finds (top 8 nodes by |effect|)", *circuits, ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
