"""Benchmark: the two corpus-sized jobs on Ray (docs/scale-out.md), on the embedded model.

1. Driver peak memory versus corpus size: the dashboards' corpus pass (`corpus_pass`, the top 8
   features per site chosen, as the dashboard's default) over 1k, 8k and 64k prompts of the zoo
   corpus, and `attribute` (IOI logit difference, 32 nodes, edges) over 250, 1,000 and 2,000
   prompts, in this process and with 2 Ray workers; each measurement in a fresh child process,
   whose peak RSS (`ru_maxrss`) is the driver's. The baseline row (size 1) loads the Lens and
   runs the job on one prompt: what the process costs before the corpus does. Also printed: the
   job's own peak above the process's RSS once its input is built (`VmHWM` reset after the
   corpus is tokenized or the prompt set built), which leaves out the input itself.
2. Speed-up of 2 local Ray workers versus 1 (and versus no Ray) for the corpus pass and for
   `attribute` over IOI prompts, timed from loaded workers to the merged result, in the same run.

    python benchmarks/bench_ray.py [--sizes 1000,8000,64000] [--attr-sizes 250,1000,2000]
                                   [--speed-prompts 8000] [--attr-prompts 256] [--quick]

`--quick`: sizes 200,800 and 32,64, 1,000 prompts for speed, 32 for attribution (a few
minutes). Prints one
line per measurement and the load average; Ray's local instance gets 2 CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]


def _status_mb(field: str) -> float:
    """A `/proc/self/status` memory field (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _job_start() -> float:
    """Collect garbage, reset the peak RSS to the current RSS (Linux), and return the RSS."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _child(job: str, n: int, workers: int) -> dict[str, float]:
    """One measurement in this (fresh) process: workers 0 means no Ray."""
    import torch

    torch.set_num_threads(1)
    from feature_lens import Lens
    from feature_lens.dashboard.data import corpus_pass, prepare_dataset, top_features

    lens = Lens.load()
    executor = None
    ready = time.perf_counter()
    if workers:
        from feature_lens.distributed import LensRecipe
        from feature_lens.distributed.ray_executor import RayExecutor

        executor = RayExecutor(LensRecipe({"model": "zoo"}), address="auto", workers=workers)
        executor.pids()  # actors up, the Lens loaded in each
    started, cpu_started = time.perf_counter(), time.process_time()
    if job == "corpus":
        from feature_lens.zoo import corpus_texts

        dataset = prepare_dataset(lens, corpus_texts(n, n_ctx=int(lens.model.cfg.n_ctx)))
        before = _job_start()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = corpus_pass(lens, dataset, lambda d: top_features(d, 8), executor=executor)
        size = len(result.features)
    else:
        from feature_lens.attribution import LogitDiff, PromptSet, attribute
        from feature_lens.zoo import task_prompts

        pairs = task_prompts("ioi", n)
        prompts = PromptSet.build(
            lens, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
        )
        before = _job_start()
        graph = attribute(
            lens, prompts, LogitDiff(), max_nodes=32, progress=False, executor=executor
        )
        size = len(graph.edges)
    seconds = time.perf_counter() - started
    driver_cpu = time.process_time() - cpu_started
    job_mb = _status_mb("VmHWM") - before
    if executor is not None:
        executor.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "seconds": seconds,
        "startup": started - ready,
        "peak_rss_mb": rss,
        "job_mb": job_mb,
        "driver_cpu": driver_cpu,
        "size": size,
    }


def measure(job: str, n: int, workers: int) -> dict[str, float]:
    """Run `_child` in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, __file__, "--child", job, str(n), str(workers)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {job} n={n} workers={workers} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,8000,64000")
    parser.add_argument("--attr-sizes", default="250,1000,2000")
    parser.add_argument("--speed-prompts", type=int, default=8000)
    parser.add_argument("--attr-prompts", type=int, default=256)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job, n, workers = args.child
        print(json.dumps(_child(job, int(n), int(workers))))
        return
    if args.quick:
        args.sizes, args.attr_sizes = "200,800", "32,64"
        args.speed_prompts, args.attr_prompts = 1000, 32
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    print("1. driver peak RSS vs corpus size (embedded model; size 1: the process's own cost)")
    for job, text, what in (
        ("corpus", args.sizes, "features chosen"),
        ("attribute", args.attr_sizes, "edges"),
    ):
        for n in [1, *(int(s) for s in text.split(","))]:
            for workers in (0, 2):
                r = measure(job, n, workers)
                where = "no Ray   " if not workers else f"{workers} workers"
                print(
                    f"  {job:<9} {n:>6} prompts, {where}: driver peak "
                    f"{r['peak_rss_mb']:6.0f} MB, the job's own {r['job_mb']:6.1f} MB, "
                    f"{r['seconds']:7.1f} s, {int(r['size'])} {what}",
                    flush=True,
                )
    print("2. speed-up of 2 local Ray workers vs 1 (same run; startup excluded, shown apart)")
    for job, n in (("corpus", args.speed_prompts), ("attribute", args.attr_prompts)):
        results = {w: measure(job, n, w) for w in (0, 1, 2)}
        base = results[1]["seconds"]
        for w, r in results.items():
            label = "no Ray   " if not w else f"{w} worker{'s' if w > 1 else ' '}"
            print(
                f"  {job:<9} {n:>6} prompts, {label}: {r['seconds']:7.1f} s "
                f"(startup {r['startup']:4.1f} s), x{base / r['seconds']:.2f} vs 1 worker, "
                f"driver CPU {r['driver_cpu']:5.1f} s",
                flush=True,
            )
    print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
