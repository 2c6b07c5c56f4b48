"""How fast the command line answers `--help` and `--version`, against baselines in the same run.

Baselines: a bare Python start (`python -c pass`) and `python -c "import torch"` (what `--help`
cost when the package root imported torch eagerly). Each command runs in a fresh process, best of N.
Also checks that `--help` imported neither torch nor TransformerLens.

    python benchmarks/bench_cli_startup.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _best(argv: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    py = sys.executable
    with open("/proc/loadavg") as f:
        print(f"load average: {f.read().strip()}")
    bare = _best([py, "-c", "pass"], repeats)
    torch_import = _best([py, "-c", "import torch"], repeats)
    help_time = _best([py, "-m", "feature_lens", "--help"], repeats)
    version_time = _best([py, "-m", "feature_lens", "--version"], repeats)
    sub_help = _best([py, "-m", "feature_lens", "dashboard", "--help"], repeats)
    print(f"python -c pass:            {bare:6.3f} s")
    print(f"python -c 'import torch':  {torch_import:6.3f} s")
    print(
        f"feature-lens --help:       {help_time:6.3f} s  ({help_time / torch_import:.2f}x import torch)"
    )
    print(f"feature-lens --version:    {version_time:6.3f} s")
    print(
        f"feature-lens dashboard -h: {sub_help:6.3f} s  ({sub_help / torch_import:.2f}x import torch)"
    )
    probe = (
        "import sys\nfrom feature_lens.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformer_lens', 'sae_lens') if m in sys.modules]\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    clean = (
        subprocess.run([py, "-c", probe], capture_output=True, env=env, check=False).returncode == 0
    )
    print(f"--help imports torch/TransformerLens/SAE-Lens: {'no' if clean else 'YES'}")
    if not clean:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
