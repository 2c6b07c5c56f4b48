"""One real local Ray cluster for the module that needs it (head + two worker nodes, `ray start`),
always stopped at the end, and the driver connected to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.distributed import cluster as local_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(cluster, kill folder): the kill folder arms `FEATURE_LENS_TEST_KILL_ONCE` on the workers."""
    ray = pytest.importorskip("ray")
    kill = tmp_path_factory.mktemp("kill")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "FEATURE_LENS_TEST_KILL_ONCE": str(kill)}
    # Two CPUs per node: the module's executor holds one actor on each, the CLI test adds two.
    saved = {k: os.environ.get(k) for k in local_cluster.AUTH}
    os.environ.update(local_cluster.AUTH)
    cluster = local_cluster.start(2, cpus=2, env=env)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield cluster, kill
    finally:
        try:
            ray.shutdown()
        finally:
            local_cluster.stop(cluster)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            assert not local_cluster.cluster_pids(cluster)
