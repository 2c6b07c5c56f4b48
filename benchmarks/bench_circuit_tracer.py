"""feature-lens vs circuit-tracer 0.5.0 on circuit-tracer's own job, timed in the same run.

One random GPT-2-shaped model (a Hugging Face folder written by `transformers`) and random
per-layer ReLU transcoders (`ln2.hook_normalized` -> `hook_mlp_out`) written in circuit-tracer's
format (`config.yaml` + `layer_L.safetensors`); feature-lens loads the same files. For each prompt
length:
- circuit-tracer: its `attribute` (every active feature, salient logits, batch size as given) in
  its own virtual environment (`tests/circuit_tracer_reference.py` as a subprocess, one thread,
  its `ReplacementModel` built by hand the way its loader does), best of N inside that process;
- feature-lens: `attribute(method="direct", metric="salient-logits", baseline="zero",
  exclude_bos=True, token_nodes="embed", max_feature_nodes=<all>)` with the weights loaded
  unprocessed as circuit-tracer loads them, one thread, best of N;
then the two graphs are checked equal (feature, error and token -> feature edges; the metric's
edges against circuit-tracer's probability-weighted logit rows) and the ratio printed. A
disagreement exits with status 1; the speed target (ours <= 1.0x) is printed, not failed.

    python benchmarks/bench_circuit_tracer.py            # 16 and 48 tokens
    python benchmarks/bench_circuit_tracer.py --quick    # a smaller model, 8 and 16 tokens

The reference Python is `$FEATURE_LENS_CIRCUIT_TRACER_PYTHON` (default
/work/venv/peers/circuit-tracer-0.5.0/bin/python).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from common import best_of, machine_line
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "circuit_tracer_reference.py"
SIZES = {
    "full": {"n_layer": 6, "n_embd": 256, "n_head": 8, "vocab": 2048, "d_tc": 2048},
    "quick": {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab": 512, "d_tc": 256},
}


def write_model(folder: Path, size: dict[str, int], n_ctx: int) -> None:
    """A random GPT-2 folder with a word-level tokenizer (circuit-tracer decodes labels)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=size["n_layer"],
        n_embd=size["n_embd"],
        n_head=size["n_head"],
        n_positions=n_ctx,
        vocab_size=size["vocab"],
        bos_token_id=0,
    )
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    vocab = {"<bos>": 0, "<unk>": 1, **{f"w{i}": i for i in range(2, size["vocab"])}}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<bos>", unk_token="<unk>", pad_token="<unk>"
    ).save_pretrained(folder)


def write_transcoders(folder: Path, size: dict[str, int], model_name: str) -> None:
    """Random per-layer ReLU transcoders in circuit-tracer's format; a few percent fire."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(1)
    d, f = size["n_embd"], size["d_tc"]
    for layer in range(size["n_layer"]):
        weights = {
            "W_enc": torch.randn(f, d, generator=generator) / d**0.5,
            "W_dec": 0.5 * torch.randn(f, d, generator=generator) / d**0.5,
            "b_enc": torch.full((f,), -2.3),
            "b_dec": 0.02 * torch.randn(d, generator=generator),
        }
        save_file(weights, str(folder / f"layer_{layer}.safetensors"))
    config = {
        "model_kind": "transcoder_set",
        "model_name": model_name,
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "scan": "bench-relu",
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


def run_reference(
    python: str, model: Path, sets: Path, tokens: list[int], batch: int, repeats: int, out: Path
) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    job = ",".join([str(out), "all", str(batch), "0.8", "0.98", str(repeats)])
    args = [str(model), str(sets), ",".join(map(str, tokens)), job]
    done = subprocess.run(
        [python, str(REFERENCE), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"circuit-tracer failed:\n{done.stderr[-3000:]}")
    return load_file(str(out))


def ours_graph(lens: Any, tokens: list[int], batch: int) -> Any:
    from feature_lens.attribution import PromptSet, attribute

    return attribute(
        lens,
        PromptSet.build(lens, torch.tensor([tokens])),
        "salient-logits",
        method="direct",
        baseline="zero",
        exclude_bos=True,
        token_nodes="embed",
        max_feature_nodes=10**9,
        batch_size=batch,
        progress=False,
    )


def compare(lens: Any, ct: dict[str, Any], graph: Any, n_pos: int) -> float:
    """Largest |ours - theirs| relative to the largest edge, over feature-target rows and the
    metric row (circuit-tracer's node order; BOS error columns are zero on both sides)."""
    from feature_lens.attribution.nodes import Node
    from feature_lens.lens import EMBED_SITE

    n_layers = int(lens.model.cfg.n_layers)
    sites = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]
    active = ct["active_features"][ct["selected_features"]]
    nodes = [Node("feature", sites[int(a)], int(p), int(i)) for a, p, i in active.tolist()]
    nodes += [Node("error", sites[a], p) for a in range(n_layers) for p in range(n_pos)]
    nodes += [Node("token", EMBED_SITE, p) for p in range(n_pos)]
    row = {node: r for r, node in enumerate(graph.table.nodes)}
    index = [row.get(node, -1) for node in nodes] + [graph.metric_row]
    present = torch.tensor([i >= 0 for i in index], dtype=torch.float64)
    safe = torch.tensor([max(i, 0) for i in index])
    dense = graph.dense_adjacency()[safe][:, safe] * present[:, None] * present[None, :]
    n, n_feat, k = len(nodes), len(active), len(ct["logit_ids"])
    theirs = ct["adjacency"].double()
    expected = torch.cat(
        [theirs[:n_feat, :n], ct["logit_probabilities"].double() @ theirs[-k:, :n][None]]
    )
    got = torch.cat([dense[:n_feat, :n], dense[-1:, :n]])
    return float((got - expected).abs().max() / expected.abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller model, 8 and 16 tokens")
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="best of N, each side")
    parser.add_argument("--batch-size", type=int, default=512, help="rows per backward (both)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    python = os.environ.get(
        "FEATURE_LENS_CIRCUIT_TRACER_PYTHON", "/work/venv/peers/circuit-tracer-0.5.0/bin/python"
    )
    if not Path(python).is_file():
        sys.exit(f"no circuit-tracer Python at {python}; set FEATURE_LENS_CIRCUIT_TRACER_PYTHON")
    size = SIZES["quick" if args.quick else "full"]
    lengths = args.lengths or ([8, 16] if args.quick else [16, 48])
    print(machine_line("bench_circuit_tracer"))
    print(f"/proc/loadavg: {Path('/proc/loadavg').read_text().strip()}")
    print(
        f"model: GPT-2 shape, {size['n_layer']} layers, d_model {size['n_embd']}, vocab "
        f"{size['vocab']}; ReLU transcoders d {size['d_tc']} per layer; batch {args.batch_size}; "
        f"best of {args.repeats}"
    )
    from feature_lens import Lens

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_model(root / "bench-gpt2", size, max(lengths) + 1)
        sets = root / "sets" / "bench-relu"
        write_transcoders(sets, size, "bench-gpt2")
        raw = {"fold_ln": False, "center_writing_weights": False, "center_unembed": False}
        lens = Lens.load(root / "bench-gpt2", sets, processing=raw)
        generator = torch.Generator().manual_seed(2)
        for n_pos in lengths:
            rest = torch.randint(2, size["vocab"], (n_pos - 1,), generator=generator).tolist()
            tokens = [0, *rest]
            start = time.perf_counter()
            ct = run_reference(
                python,
                root / "bench-gpt2",
                sets,
                tokens,
                args.batch_size,
                args.repeats,
                root / f"ct-{n_pos}.safetensors",
            )
            wall = time.perf_counter() - start
            theirs = float(ct["seconds"])
            ours, graph = best_of(
                lambda tokens=tokens: ours_graph(lens, tokens, args.batch_size), args.repeats
            )
            error = compare(lens, ct, graph, n_pos)
            n_feat = len(ct["active_features"])
            ok = error < 1e-4
            failed |= not ok
            print(
                f"{n_pos:3d} tokens, {n_feat:5d} active features, {len(ct['logit_ids'])} logits: "
                f"circuit-tracer {theirs:7.3f} s (process {wall:.1f} s), feature-lens "
                f"{ours:7.3f} s, ratio {ours / theirs:5.2f}x (target <= 1.0x: "
                f"{'met' if ours <= theirs else 'missed'}); max |diff| / max |edge| = {error:.1e} "
                f"({'equal' if ok else 'DIFFERENT'})"
            )
    print(f"/proc/loadavg after: {Path('/proc/loadavg').read_text().strip()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
