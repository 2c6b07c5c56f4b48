"""Both corpus-sized jobs on a real Ray cluster (a head and two worker nodes started by `ray start`
on this machine) equal the single-process results: dashboards byte for byte, attribution graphs
to float tolerance; a worker process killed mid-job is restarted, its chunk retried, and the
result is still equal with nothing partial left in the output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from feature_lens import Lens
from feature_lens.attribution import LogitDiff, PromptSet, attribute
from feature_lens.cli import main
from feature_lens.dashboard import build_dashboards
from feature_lens.distributed import LensRecipe
from feature_lens.graph import AttributionGraph
from feature_lens.zoo import corpus_texts, task_prompts

N_PROMPTS = 600  # three chunks of the corpus pass
DASH: dict[str, Any] = {"top_k": 2, "progress": False, "n_neighbour_prompts": 2}


@pytest.fixture(scope="module")
def zoo_lens() -> Lens:
    torch.set_num_threads(1)
    return Lens.load()


@pytest.fixture(scope="module")
def corpus(zoo_lens: Lens) -> list[str]:
    return corpus_texts(N_PROMPTS, n_ctx=int(zoo_lens.model.cfg.n_ctx))


@pytest.fixture(scope="module")
def local_site(zoo_lens: Lens, corpus: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "dash"
    build_dashboards(zoo_lens, out, corpus, **DASH)
    return out


@pytest.fixture(scope="module")
def executor(ray_cluster: Any) -> Any:
    from feature_lens.distributed.ray_executor import RayExecutor

    with RayExecutor(LensRecipe({"model": "zoo"}), address=None, workers=2) as ex:
        yield ex


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _graphs_equal(a: AttributionGraph, b: AttributionGraph) -> None:
    assert list(a.nodes) == list(b.nodes)
    assert a.settings == b.settings
    torch.testing.assert_close(a.adjacency, b.adjacency, rtol=1e-9, atol=1e-12)
    for x, y in zip(a.nodes.values(), b.nodes.values(), strict=True):
        assert x == y


def test_dashboard_on_two_workers_is_byte_identical(
    zoo_lens: Lens, corpus: list[str], local_site: Path, executor: Any, tmp_path: Path
) -> None:
    assert len(set(executor.pids())) == 2  # two actor processes
    out = tmp_path / "dash"
    build_dashboards(zoo_lens, out, corpus, executor=executor, **DASH)
    local, remote = _files(local_site), _files(out)
    assert local.keys() == remote.keys()
    for name, data in local.items():
        assert remote[name] == data, name


def test_attribute_on_two_workers_equals_one_process(zoo_lens: Lens, executor: Any) -> None:
    pairs = task_prompts("ioi", 12)
    prompts = PromptSet.build(
        zoo_lens, pairs.clean, pairs.corrupted, torch.stack([pairs.correct, pairs.wrong], 1)
    )
    kwargs: dict[str, Any] = {"max_nodes": 16, "progress": False}
    local = attribute(zoo_lens, prompts, LogitDiff(), **kwargs)
    remote = attribute(zoo_lens, prompts, LogitDiff(), executor=executor, **kwargs)
    _graphs_equal(local, remote)
    assert local.settings["n_prompts"] == 12


def test_killed_worker_is_retried_and_nothing_partial_is_left(
    zoo_lens: Lens,
    corpus: list[str],
    local_site: Path,
    executor: Any,
    ray_cluster: Any,
    tmp_path: Path,
) -> None:
    _, kill = ray_cluster
    before = set(executor.pids())
    (kill / "arm").write_text("")  # the next chunk a worker takes kills its process
    out = tmp_path / "dash"
    build_dashboards(zoo_lens, out, corpus, executor=executor, **DASH)
    assert (kill / "fired").exists()  # a worker really died mid-job
    assert set(executor.pids()) != before  # and Ray restarted it
    assert _files(out) == _files(local_site)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dash"]  # no temp sibling left


def test_cli_joins_the_cluster(zoo_lens: Lens, ray_cluster: Any, tmp_path: Path) -> None:
    """`feature-lens attribute --prompts FILE --ray ADDRESS` writes the one-process graph."""
    cluster, _ = ray_cluster
    pairs = task_prompts("ioi", 6)
    files = {}
    for name, rows in (("clean", pairs.clean), ("corrupted", pairs.corrupted)):
        files[name] = tmp_path / f"{name}.txt"
        texts = [zoo_lens.model.to_string(row[1:]) for row in rows]  # without the BOS
        files[name].write_text("\n".join(texts) + "\n")
    common = ["attribute", "--prompts", str(files["clean"])]
    common += ["--corrupted-prompts", str(files["corrupted"]), "--max-nodes", "12"]
    common += ["--correct", "anna", "--wrong", "adam"]
    assert main([*common, "--out", str(tmp_path / "one.json")]) == 0
    ray_args = ["--ray", cluster.address, "--ray-workers", "2"]
    assert main([*common, *ray_args, "--out", str(tmp_path / "ray.json")]) == 0
    _graphs_equal(
        AttributionGraph.load(tmp_path / "one.json"), AttributionGraph.load(tmp_path / "ray.json")
    )
