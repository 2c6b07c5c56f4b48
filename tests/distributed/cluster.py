"""A real Ray cluster on this machine for the tests: a head (no CPUs, so nothing runs on it) and
worker nodes started with `ray start`, each its own raylet with its own worker processes, all under
a private temp folder and port. `stop` ends exactly the processes of this cluster (found by that
folder in their command lines, and their descendants), never another Ray on the machine."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
AUTH = {"RAY_AUTH_MODE": "disabled"}
"""Set for the cluster's processes and the driver alike."""


@dataclass
class LocalCluster:
    """A running cluster: its address and private temp folder."""

    address: str
    temp_dir: Path
    env: dict[str, str]


def _ray(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [RAY, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def start(workers: int = 2, *, cpus: int = 1, env: dict[str, str] | None = None) -> LocalCluster:
    """Start a head and `workers` worker nodes of `cpus` (logical) CPUs each."""
    # A short folder: Ray's unix sockets live under it (path length limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="flray-", dir="/tmp"))
    # RAY_AUTH_MODE explicit: with it unset, Ray turns token authentication on in any process that
    # finds a ~/.ray/auth_token, so nodes and driver could disagree.
    full_env = {**os.environ, **(env or {}), **AUTH, "OMP_NUM_THREADS": "1"}
    full_env["RAY_USAGE_STATS_ENABLED"] = "0"
    common = ["--temp-dir", str(temp_dir), "--disable-usage-stats"]
    cluster = LocalCluster("", temp_dir, full_env)
    try:
        out = _ray(
            ["start", "--head", "--port=0", "--num-cpus=0", "--include-dashboard=false", *common],
            full_env,
        )
        match = re.search(r"ray start --address='([^']+)'", out)
        if match is None:
            raise RuntimeError(f"no address in ray start's output:\n{out}")
        cluster.address = match.group(1)
        for _ in range(workers):
            # On a loaded machine a raylet can miss Ray's fixed 30 s registration window; try
            # again (a late one that registers after all only adds CPUs).
            for attempt in range(3):
                try:
                    args = ["start", f"--address={cluster.address}", f"--num-cpus={cpus}"]
                    _ray([*args, *common], full_env)
                    break
                except RuntimeError:
                    if attempt == 2:
                        raise
    except BaseException:
        stop(cluster)
        raise
    return cluster


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can read."""
    out: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry.name)] = (parent, cmdline)
    return out


def cluster_pids(cluster: LocalCluster) -> set[int]:
    """The processes of `cluster`: those whose command line names its temp folder, and their
    descendants."""
    procs = _processes()
    mine = {pid for pid, (_, cmd) in procs.items() if str(cluster.temp_dir) in cmd}
    mine.discard(os.getpid())
    grew = True
    while grew:
        children = {pid for pid, (parent, _) in procs.items() if parent in mine} - mine
        grew = bool(children)
        mine |= children
    return mine


def stop(cluster: LocalCluster) -> None:
    """End the cluster's processes (TERM, then KILL after 3 s) and remove its temp folder."""
    pids = cluster_pids(cluster)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            pids = {pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)}
            if not pids:
                break
            time.sleep(0.2)
        if not pids:
            break
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False
