"""Do features of the same planted mechanism cluster together by their connections? Writes
docs/clustering.md.

    python scripts/clustering_report.py [--prompts 8] [--features 24]

For each planted task, an attribution graph (all positions summed, so a node is a feature) over the
task's held-out prompts. A feature's planted label is the task in whose graph it has the largest
|effect|, among the `--features` strongest of each task. Features are clustered (k = number of tasks)
by their connectivity profiles — edge weights to and from other nodes across all task graphs, with
the edges to the metrics left out so the label cannot leak in — and, as the baseline, by the cosine
of their decoder directions. Both are scored by the adjusted Rand index against the planted labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from feature_lens import Lens
from feature_lens.attribution import LogitDiff, PromptSet, attribute
from feature_lens.clustering import (
    adjusted_rand_index,
    cluster_profiles,
    connectivity_profiles,
    decoder_clusters,
)
from feature_lens.zoo import TASKS, task_prompts


def main() -> None:
    """Run the evaluation and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument(
        "--method", default="attribution", choices=["attribution", "direct", "exact"]
    )
    parser.add_argument("--out", type=Path, default=Path("docs/clustering.md"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    lens = Lens.load()
    graphs = []
    for task in TASKS:
        pairs = task_prompts(task, args.prompts)
        prompts = PromptSet.build(
            lens, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
        )
        graphs.append(
            attribute(
                lens,
                prompts,
                LogitDiff(),
                method=args.method,
                positions="sum",
                max_nodes=4 * args.features,
                progress=False,
            )
        )
    labels: dict[str, int] = {}
    best: dict[str, float] = {}
    for t, graph in enumerate(graphs):
        for node in graph.features()[: args.features]:
            if abs(node.effect) > best.get(node.id, 0.0):
                labels[node.id], best[node.id] = t, abs(node.effect)
    k = len(TASKS)
    clusterings: dict[bool, dict[str, int]] = {}
    for with_activations in (False, True):
        profiles = connectivity_profiles(
            graphs, include_metric=False, include_activation=with_activations
        )
        ids = [i for i in profiles.node_ids if i in labels]
        keep = [profiles.node_ids.index(i) for i in ids]
        profiles.node_ids, profiles.matrix = ids, profiles.matrix[keep]
        clusterings[with_activations] = cluster_profiles(profiles, k)
    by_connections = clusterings[False]
    ari_with_activations = adjusted_rand_index(clusterings[True], labels)
    nodes = {i: n for g in graphs for i, n in zip(g.ids, g.table.nodes, strict=True)}
    by_decoder = decoder_clusters(lens, [nodes[i] for i in ids], k)
    ari_connections = adjusted_rand_index(by_connections, labels)
    ari_decoder = adjusted_rand_index(by_decoder, labels)
    lines = [
        "# Clustering features by connectivity on the embedded model",
        "",
        f"Made by `python scripts/clustering_report.py --prompts {args.prompts} --features {args.features} --method {args.method}`.",
        "",
        (__doc__ or "").split("\n\n", 2)[2].strip(),
        "",
        f"{len(ids)} features ({', '.join(f'{TASKS[t]}: {sum(1 for v in labels.values() if v == t)}' for t in range(k))}).",
        "",
        "| clustering | adjusted Rand index vs planted task |",
        "|---|---|",
        f"| connectivity profiles | {ari_connections:.3f} |",
        f"| connectivity profiles + activation pattern (mean activation in each task's prompts) | {ari_with_activations:.3f} |",
        f"| decoder-direction cosine (baseline) | {ari_decoder:.3f} |",
        "",
        "| feature | planted task | connectivity cluster | decoder cluster |",
        "|---|---|---|---|",
    ]
    for node_id in sorted(ids, key=lambda i: (labels[i], by_connections[i])):
        lines.append(
            f"| `{node_id}` | {TASKS[labels[node_id]]} | {by_connections[node_id]} | {by_decoder[node_id]} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(
        f"ARI connectivity {ari_connections:.3f}, with activations {ari_with_activations:.3f}, "
        f"decoder {ari_decoder:.3f}; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
