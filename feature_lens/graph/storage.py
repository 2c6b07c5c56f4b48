"""Saving and loading attribution graphs (format in `feature_lens.graph.schema`, docs/graph-format.md).

`save_graph` writes format version 2: `<name>.json` (metadata, node identity columns) and
`<name>.safetensors` beside it (node values and the adjacency), each atomically
(`feature_lens.outputs.write_file`; the tensors first, so a JSON file never points at tensors that are not there; the JSON
records the tensors' SHA-256, so a mismatched pair is refused on load). Non-finite numbers are
refused at save time. `load_graph` reads version 2 and version-1 JSON files and refuses malformed
files with a one-line `LoadingError`: bad JSON or nesting too deep, non-finite numbers, negative
positions, duplicate node ids, edges to missing nodes, no (or several) metric nodes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch
from jaxtyping import Float64
from pydantic import ValidationError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor

from feature_lens.errors import FeatureLensError, LoadingError
from feature_lens.graph.graph import AttributionGraph
from feature_lens.graph.node import Node
from feature_lens.graph.schema import GraphFile, GraphRecordV1, NodeColumns, TensorFile
from feature_lens.graph.table import NO_VALUE, NodeTable
from feature_lens.outputs import check_file_target, write_file
from feature_lens.typed import int_list

T = TypeVar("T")


def tensor_path(path: Path) -> Path:
    """Where the tensors of the graph saved at `path` live: `x.json` -> `x.safetensors`."""
    return (
        path.with_suffix(".safetensors") if path.suffix == ".json" else Path(f"{path}.safetensors")
    )


# ------------------------------------------------------------------------------------- saving
def _check_finite_settings(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FeatureLensError(
            f"setting {where} is {value}; graphs store finite numbers only (fix the value or "
            "leave the setting out)"
        )
    if isinstance(value, dict):
        for key, item in value.items():  # type: ignore[reportUnknownVariableType]
            _check_finite_settings(item, f"{where}.{key}")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):  # type: ignore[reportUnknownVariableType]
            _check_finite_settings(item, f"{where}[{i}]")


def _check_finite(graph: AttributionGraph) -> None:
    for name in ("activation", "effect"):
        column: Tensor = getattr(graph.table, name)
        bad = torch.nonzero(~torch.isfinite(column))
        if bad.numel():
            row = int(bad[0, 0])
            raise FeatureLensError(
                f"node {graph.ids[row]!r} has {name} {float(column[row])}; graphs store finite "
                "numbers only (a NaN usually means a metric or baseline was undefined)"
            )
    bad = torch.nonzero(~torch.isfinite(graph.edge_weight))
    if bad.numel():
        e = int(bad[0, 0])
        target, source = (int(r) for r in graph.edge_index[:, e])
        raise FeatureLensError(
            f"edge {graph.ids[source]!r} -> {graph.ids[target]!r} has weight "
            f"{float(graph.edge_weight[e])}; graphs store finite numbers only"
        )
    _check_finite_settings(graph.settings, "settings")


def graph_tensors(graph: AttributionGraph) -> tuple[dict[str, Tensor], str]:
    """The tensors saved beside the JSON, and the adjacency layout ("coo" or "dense", whichever
    takes fewer bytes: dense is 8 n^2, COO 24 e)."""
    n, e = len(graph.table), graph.n_edges
    tensors = {
        "activation": graph.table.activation.contiguous(),
        "effect": graph.table.effect.contiguous(),
    }
    if n * n <= 3 * e:
        tensors["adjacency"] = graph.dense_adjacency().contiguous()
        return tensors, "dense"
    tensors["edge_index"] = graph.edge_index.contiguous()
    tensors["edge_weight"] = graph.edge_weight.contiguous()
    return tensors, "coo"


def graph_file(graph: AttributionGraph, tensors_name: str, data: bytes, layout: str) -> GraphFile:
    """The JSON half of a version-2 graph."""
    table = graph.table
    nodes = table.nodes
    cluster = int_list(table.cluster)
    columns = NodeColumns.model_construct(
        kind=[node.kind for node in nodes],
        site=[node.site for node in nodes],
        pos=[node.pos for node in nodes],
        index=[node.index for node in nodes],
        layer=int_list(table.layer),
        order=int_list(table.order),
        label=list(table.label),
        cluster=[None if c == NO_VALUE else c for c in cluster],
    )
    return GraphFile.model_construct(
        format="feature-lens-graph",
        version=2,
        method=graph.method,
        metric=graph.metric,
        settings=graph.settings,
        prompts=graph.prompts,
        nodes=columns,
        tensors=TensorFile(
            file=tensors_name,
            sha256=hashlib.sha256(data).hexdigest(),
            n_nodes=len(table),
            n_edges=graph.n_edges,
            adjacency=layout,  # type: ignore[arg-type]
        ),
    )


def save_graph(graph: AttributionGraph, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write `graph` as format version 2 (see the module docstring); returns the JSON path."""
    path = Path(path)
    tensors_at = tensor_path(path)
    for target in (path, tensors_at):
        check_file_target(target, overwrite=overwrite)
    _check_finite(graph)
    tensors, layout = graph_tensors(graph)
    data = save_tensors(tensors)
    record = graph_file(graph, tensors_at.name, data, layout)
    text = json.dumps(record.model_dump(mode="json"), indent=1, allow_nan=False)
    write_file(tensors_at, data, overwrite=overwrite)
    write_file(path, text, overwrite=overwrite)
    return path


# ------------------------------------------------------------------------------------ loading
def _fail(path: Path, reason: str) -> NoReturn:
    raise LoadingError(f"{str(path)!r} is not a feature-lens graph: {reason}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name} (graphs store finite numbers only)")


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']} (got {str(first.get('input'))[:60]!r})"


def load_graph(path: str | Path) -> AttributionGraph:
    """Read a graph file (version 2, or version-1 JSON), validated (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LoadingError(f"no graph file at {str(path)!r}") from None
    except (UnicodeDecodeError, IsADirectoryError) as error:
        _fail(path, f"not a JSON text file ({type(error).__name__})")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        _fail(path, "the JSON is nested too deeply")
    except ValueError as error:
        _fail(path, str(error).splitlines()[0])
    if not isinstance(data, dict) or data.get("format") != "feature-lens-graph":  # type: ignore[union-attr]
        _fail(path, "its 'format' is not 'feature-lens-graph'")
    version = data.get("version")  # type: ignore[union-attr]
    try:
        if version == 1:
            return _from_v1(path, GraphRecordV1.model_validate(data))
        if version == 2:
            return _from_v2(path, GraphFile.model_validate(data))
    except ValidationError as error:
        _fail(path, _first_error(error))
    except RecursionError:
        _fail(path, "the JSON is nested too deeply")
    _fail(path, f"unknown version {version!r}; this feature-lens reads versions 1 and 2")


def _table(
    path: Path,
    columns: NodeColumns,
    activation: Float64[Tensor, " n"],
    effect: Float64[Tensor, " n"],
) -> NodeTable:
    n = len(columns.kind)
    lengths = {name: len(getattr(columns, name)) for name in NodeColumns.model_fields}
    if any(length != n for length in lengths.values()):
        _fail(path, f"node columns differ in length: {lengths}")
    nodes = [
        Node(kind, site, pos, index)
        for kind, site, pos, index in zip(
            columns.kind, columns.site, columns.pos, columns.index, strict=True
        )
    ]
    return NodeTable.from_nodes(
        nodes,
        layer=columns.layer,
        order=columns.order,
        activation=activation,
        effect=effect,
        label=columns.label,
        cluster=columns.cluster,
    )


def _graph(path: Path, build: Callable[[], T]) -> T:
    try:
        return build()
    except (FeatureLensError, ValueError) as error:
        _fail(path, str(error).splitlines()[0])


def _from_v2(path: Path, record: GraphFile) -> AttributionGraph:
    spec = record.tensors
    if Path(spec.file).name != spec.file or spec.file in ("", ".", ".."):
        _fail(path, f"its tensor file {spec.file!r} must be a plain file name beside it")
    try:
        data = (path.parent / spec.file).read_bytes()
    except FileNotFoundError:
        _fail(path, f"its tensor file {spec.file!r} is missing; keep it beside the JSON file")
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        _fail(path, f"{spec.file!r} does not belong to it (SHA-256 differs); save the graph again")
    try:
        tensors = load_tensors(data)
    except Exception as error:  # safetensors raises its own error types
        _fail(path, f"{spec.file!r} is not a safetensors file ({str(error).splitlines()[0]})")
    n, e = spec.n_nodes, spec.n_edges
    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        "activation": ((n,), torch.float64),
        "effect": ((n,), torch.float64),
    }
    if spec.adjacency == "dense":
        expected["adjacency"] = ((n, n), torch.float64)
    else:
        expected["edge_index"] = ((2, e), torch.int64)
        expected["edge_weight"] = ((e,), torch.float64)
    for name, (shape, dtype) in expected.items():
        tensor = tensors.get(name)
        if tensor is None or tuple(tensor.shape) != shape or tensor.dtype != dtype:
            got = None if tensor is None else (tuple(tensor.shape), str(tensor.dtype))
            _fail(path, f"tensor {name!r} should be {shape} {dtype}, got {got}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            _fail(path, f"tensor {name!r} holds non-finite numbers")
    if len(record.nodes.kind) != n:
        _fail(path, f"{len(record.nodes.kind)} nodes in the JSON, {n} in the tensor file")
    table = _graph(
        path, lambda: _table(path, record.nodes, tensors["activation"], tensors["effect"])
    )
    if spec.adjacency == "dense":
        adjacency = tensors["adjacency"]
        return _graph(
            path,
            lambda: AttributionGraph.from_dense(
                record.method, record.metric, table, adjacency, record.settings, record.prompts
            ),
        )
    index, weight = tensors["edge_index"], tensors["edge_weight"]
    return _graph(
        path,
        lambda: AttributionGraph(
            record.method, record.metric, table, index, weight, record.settings, record.prompts
        ).coalesced(),
    )


def _from_v1(path: Path, record: GraphRecordV1) -> AttributionGraph:
    rows: dict[str, int] = {}
    for row, node in enumerate(record.nodes):
        if node.id in rows:
            _fail(path, f"node id {node.id!r} appears twice")
        rows[node.id] = row
        for name in ("activation", "effect"):
            if not math.isfinite(getattr(node, name)):
                _fail(path, f"node {node.id!r} has a non-finite {name}")
    for edge in record.edges:
        for end in (edge.source, edge.target):
            if end not in rows:
                _fail(path, f"edge {edge.source!r} -> {edge.target!r} names a missing node {end!r}")
        if not math.isfinite(edge.weight):
            _fail(path, f"edge {edge.source!r} -> {edge.target!r} has a non-finite weight")
    nodes = record.nodes
    columns = NodeColumns(
        kind=[n.kind for n in nodes],
        site=[n.site for n in nodes],
        pos=[n.pos for n in nodes],
        index=[n.index for n in nodes],
        layer=[n.layer for n in nodes],
        order=[n.order for n in nodes],
        label=[n.label for n in nodes],
        cluster=[n.cluster for n in nodes],
    )
    activation = torch.tensor([n.activation for n in nodes], dtype=torch.float64)
    effect = torch.tensor([n.effect for n in nodes], dtype=torch.float64)
    table = _graph(path, lambda: _table(path, columns, activation, effect))
    index = torch.tensor(
        [[rows[e.target] for e in record.edges], [rows[e.source] for e in record.edges]],
        dtype=torch.int64,
    ).reshape(2, len(record.edges))
    weight = torch.tensor([e.weight for e in record.edges], dtype=torch.float64)
    return _graph(
        path,
        lambda: AttributionGraph(
            record.method, record.metric, table, index, weight, record.settings, record.prompts
        ).coalesced(),
    )
