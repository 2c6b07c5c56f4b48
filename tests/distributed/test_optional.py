"""Ray is optional: without `--ray` the commands never import it, and with `--ray` but no Ray
installed the error is one line saying how to install it (checked in fresh interpreters)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_ray_option_ray_is_never_imported(tmp_path: Path) -> None:
    code = f"""
import sys
from feature_lens.cli import main
assert main(["attribute", "--task", "ioi", "-n", "2", "--max-nodes", "4", "--no-edges",
             "--out", {str(tmp_path / "g.json")!r}]) == 0
assert main(["dashboard", "--no-task", "--n-prompts", "8", "--top-k", "1", "--no-cache",
             "--no-progress", "--out", {str(tmp_path / "dash")!r}]) == 0
print("RAY" if "ray" in sys.modules else "NO-RAY")
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO-RAY"


def test_missing_ray_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    code = f"""
import sys
sys.modules["ray"] = None  # import ray raises ImportError, as when it is not installed
from feature_lens.cli import main
for command in (["attribute", "--task", "ioi", "-n", "2"], ["dashboard", "--no-task"]):
    out = {str(tmp_path)!r} + "/" + command[0]
    print(main([*command, "--ray", "auto", "--out", out]))
"""
    done = _python(code)
    assert done.stdout.split() == ["1", "1"], done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "feature-lens attribute: error: Ray is not installed; pip install 'feature-lens[ray]'",
        "feature-lens dashboard: error: Ray is not installed; pip install 'feature-lens[ray]'",
    ]
    assert not list(tmp_path.iterdir())  # failed before writing anything
