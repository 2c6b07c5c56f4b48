"""Property-based and fuzz tests (hypothesis).

- Any valid graph survives save -> load exactly (node table, edges, settings, prompts).
- Graph files, direction files, SAE folders and corpus files that are truncated or mutated either
  load or raise a `FeatureLensError`: never another exception.
- Every CLI command fed random arguments ends with a status and at most one line on stderr, never a
  traceback (heavy work is stubbed out: this is about argument and input checking).

Derandomized (the same examples every run, no example database), so CI is deterministic. A random
run found the damaged-.npy-header case (numpy's header parser raised a TokenError).
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from feature_lens.cli import main
from feature_lens.errors import FeatureLensError
from feature_lens.graph import AttributionGraph, NodeRecord
from feature_lens.graph.node import METRIC_NODE, error, feature, token
from feature_lens.graph.storage import tensor_path
from feature_lens.lens.directions import read_vectors
from tests.conftest import make_sae

FAST = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
finite = st.floats(
    allow_nan=False, allow_infinity=False, width=64, min_value=-1e300, max_value=1e300
)
SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_attn_out", "blocks.2.hook_mlp_out", "x:y:z"]


@st.composite
def graphs(draw: st.DrawFn) -> AttributionGraph:
    """Tokens, features and errors at random sites and positions, one metric node, random forward
    edges with finite weights, random settings and prompt strings (any Unicode)."""
    keys = draw(
        st.sets(
            st.tuples(st.sampled_from(range(len(SITES))), st.integers(0, 40), st.integers(0, 9)),
            max_size=12,
        )
    )
    records = [
        NodeRecord(token(p), layer=-1, order=0, activation=draw(finite))
        for p in draw(st.sets(st.integers(0, 20), max_size=3))
    ]
    for site, index, pos in sorted(keys):
        records.append(
            NodeRecord(
                feature(SITES[site], index, pos),
                layer=site,
                order=site + 1,
                activation=draw(finite),
                effect=draw(finite),
                label=draw(st.text(max_size=8)),
                cluster=draw(st.none() | st.integers(0, 5)),
            )
        )
    if draw(st.booleans()):
        records.append(NodeRecord(error(SITES[1], None), layer=1, order=2))
    records.append(NodeRecord(METRIC_NODE, layer=9, order=99, effect=draw(finite), label="m"))
    edges: dict[tuple[str, str], float] = {}
    for s in records:
        for t in records:
            if t.kind in ("feature", "logit") and s.order < t.order and draw(st.booleans()):
                edges[(s.id, t.id)] = draw(finite.filter(lambda w: w != 0))
    setting_values = st.integers(-(2**53), 2**53) | finite | st.text(max_size=10) | st.booleans()
    graph_settings = draw(
        st.dictionaries(st.text(min_size=1, max_size=8), setting_values, max_size=4)
    )
    prompts = draw(st.lists(st.lists(st.text(max_size=6), max_size=5), max_size=3))
    method = draw(st.sampled_from(["exact", "attribution", "ig", "direct"]))
    return AttributionGraph.from_records(method, "m", records, edges, graph_settings, prompts)


@FAST
@given(graph=graphs())
def test_any_valid_graph_round_trips(graph: AttributionGraph, tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    graph.save(path, overwrite=True)
    back = AttributionGraph.load(path)
    assert back.method == graph.method
    assert back.table.ids == graph.table.ids
    assert dict(back.edges) == dict(graph.edges)
    assert back.settings == graph.settings
    assert back.prompts == graph.prompts
    for node_id, record in graph.nodes.items():
        other = back.nodes[node_id]
        assert (other.activation, other.effect) == (record.activation, record.effect)
        assert (other.layer, other.order, other.label, other.cluster) == (
            record.layer,
            record.order,
            record.label,
            record.cluster,
        )


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """Truncate, flip bytes, or splice in random bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if not data:
        return draw(st.binary(max_size=64))
    at = draw(st.integers(0, len(data) - 1))
    if how == "truncate":
        return data[:at]
    if how == "flip":
        flips = draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8))
        out = bytearray(data)
        for i in flips:
            out[i] ^= draw(st.integers(1, 255))
        return bytes(out)
    return data[:at] + draw(st.binary(min_size=1, max_size=32)) + data[at:]


def json_mutate(value: Any, draw: st.DrawFn) -> Any:
    """Replace one value somewhere in a JSON document with another JSON value."""
    junk = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
    junk = (
        junk
        | st.lists(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    )
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: json_mutate(value[key], draw)}
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], json_mutate(value[i], draw), *value[i + 1 :]]
    return draw(junk)


@pytest.fixture(scope="module")
def saved_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    from tests.test_graph import random_graph

    path = tmp_path_factory.mktemp("g") / "g.json"
    random_graph(n_features=8, density=0.5).save(path)
    return path.read_bytes(), tensor_path(path).read_bytes()


def loads_or_refuses(load: Any, *args: Any) -> str:
    """`load(*args)`: "loaded" when it returns, the error's message when it raises a
    FeatureLensError; any other exception propagates and fails the test (the messages' wording is
    checked in tests/test_cli_errors.py)."""
    try:
        load(*args)
    except FeatureLensError as error:
        return str(error).strip()
    return "loaded"


@FAST
@given(data=st.data())
def test_mutated_graph_files_load_or_are_refused(
    data: st.DataObject, saved_graph: tuple[bytes, bytes], tmp_path: Path
) -> None:
    text, tensors = saved_graph
    path = tmp_path / "g.json"
    which = data.draw(st.sampled_from(["json-bytes", "json-value", "tensors"]))
    if which == "json-value":
        document = json_mutate(json.loads(text), data.draw)
        path.write_text(json.dumps(document))
    else:
        path.write_bytes(mutate(text, data.draw) if which == "json-bytes" else text)
    tensor_path(path).write_bytes(mutate(tensors, data.draw) if which == "tensors" else tensors)
    assert loads_or_refuses(AttributionGraph.load, path)


def direction_bytes(kind: str, tmp: Path) -> bytes:
    vectors = torch.randn(2, 8)
    path = tmp / f"v{kind}"
    if kind == ".npy":
        np.save(path, vectors.numpy())
    elif kind == ".safetensors":
        save_file({"v": vectors}, str(path))
    else:
        torch.save(vectors, path)
    return path.read_bytes()


@FAST
@given(data=st.data(), kind=st.sampled_from([".npy", ".safetensors", ".pt"]))
def test_mutated_direction_files_load_or_are_refused(
    data: st.DataObject, kind: str, tmp_path: Path
) -> None:
    path = tmp_path / f"m{kind}"
    path.write_bytes(mutate(direction_bytes(kind, tmp_path), data.draw))
    assert loads_or_refuses(read_vectors, path)


@pytest.fixture(scope="module")
def sae_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sae") / "sae"
    make_sae("standard", 16, "blocks.0.hook_resid_post", d_sae=8, model_name="").save_model(folder)
    return folder


@FAST
@given(data=st.data())
def test_mutated_sae_folders_load_or_are_refused(
    data: st.DataObject, sae_folder: Path, tmp_path: Path
) -> None:
    from feature_lens.loading import load_sae

    folder = tmp_path / "sae"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(sae_folder, folder)
    if data.draw(st.booleans()):
        cfg = folder / "cfg.json"
        cfg.write_text(json.dumps(json_mutate(json.loads(cfg.read_text()), data.draw)))
    else:
        weights = folder / "sae_weights.safetensors"
        weights.write_bytes(mutate(weights.read_bytes(), data.draw))
    assert loads_or_refuses(load_sae, folder)


@FAST
@given(data=st.data(), suffix=st.sampled_from([".txt", ".json", ".jsonl"]))
def test_mutated_corpus_files_load_or_are_refused(
    data: st.DataObject, suffix: str, tmp_path: Path
) -> None:
    from feature_lens.loading.corpus import read_corpus

    good = {
        ".txt": "the cat sat\nmary and john\n",
        ".json": json.dumps(["the cat sat", "mary and john"]),
        ".jsonl": '{"text": "the cat"}\n{"text": "sat"}\n',
    }[suffix]
    path = tmp_path / f"c{suffix}"
    path.write_bytes(mutate(good.encode(), data.draw))
    assert loads_or_refuses(read_corpus, path)  # loaded, or refused with a message


# ------------------------------------------------------------------------------ CLI fuzz
OPTIONS = [
    "--model", "--sae", "--direction", "--device", "--dtype", "--out", "--overwrite", "--prompt",
    "--task", "-n", "--method", "--max-nodes", "--prompts", "--graph", "--features", "--top-k",
    "--clusters", "-k", "--steer", "--alpha", "--index", "--generate", "--threads", "--steps",
    "--seed", "--json", "--no-progress", "--baseline", "--metric", "--correct", "--wrong", "-h",
]  # fmt: skip
WORDS = ["zoo", "ioi", ".", "..", "/", "-1", "0", "1e999", "nan", "x:y", "blocks.0.hook_resid_post:1",
         "", "\x1b[2J", "\ud800", "a" * 300, "train", "report"]  # fmt: skip


class StopError(FeatureLensError):
    """Raised by the stubs in place of heavy work (loading models, training)."""


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from feature_lens.lens import Lens

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise StopError("stub: no heavy work in the fuzz test")

    monkeypatch.setattr(Lens, "load", staticmethod(stop))
    monkeypatch.setattr("feature_lens.zoo.build.build_zoo", stop)
    monkeypatch.setattr("feature_lens.zoo.report.zoo_report", stop)
    monkeypatch.chdir(tmp_path)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(["info", "zoo", "attribute", "dashboard", "steer", "cluster", "bogus"]),
    args=st.lists(
        st.sampled_from(OPTIONS) | st.sampled_from(WORDS) | st.text(max_size=6), max_size=8
    ),
)
def test_random_arguments_never_give_a_traceback(
    stubbed: None, command: str, args: list[str]
) -> None:
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            status = main([command, *args])
        except SystemExit as exit_:
            status = exit_.code
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if "-h" in args or "--help" in args:
        return
    assert "Traceback" not in err.getvalue()
    if status not in (0, None):
        assert len(lines) == 1, err.getvalue()
