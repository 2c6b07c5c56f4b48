"""Where the explorer keeps its graphs: one folder per graph under a root folder.

    ROOT/<graph id>/graph.json        the AttributionGraph (feature-lens format)
    ROOT/<graph id>/meta.json         what was asked (prompt, method, answers) and the model's outputs
    ROOT/<graph id>/annotations.json  pinned nodes, supernodes, feature labels (saved by the browser)

A graph id is 12 lowercase hex digits made here; every path is built from an id only after it
matched that pattern, so no string from a request reaches the file system unchecked. Files are
written atomically (temp file + rename).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from feature_lens.errors import InputError
from feature_lens.graph import AttributionGraph
from feature_lens.serve.view import graph_size

GRAPH_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_LABEL = 200


class TokenProb(BaseModel):
    """A next token and its probability."""

    token: str
    prob: float


class GraphMeta(BaseModel):
    """What a graph was computed from, shown in the graph list."""

    model_config = ConfigDict(extra="ignore")
    id: str
    prompt: str
    corrupted: str | None = None
    answers: list[str] = Field(default_factory=list)
    method: str
    metric: str
    created: float
    seconds: float = 0.0
    n_nodes: int = 0
    n_edges: int = 0
    outputs: list[TokenProb] = Field(default_factory=list[TokenProb])


class Supernode(BaseModel):
    """A named group of nodes."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    members: list[str] = Field(min_length=1, max_length=500)


class Annotations(BaseModel):
    """Pinned nodes, supernodes, and free-text labels of features (`SITE:INDEX` -> text)."""

    model_config = ConfigDict(extra="forbid")
    pinned: list[str] = Field(default_factory=list, max_length=2000)
    supernodes: list[Supernode] = Field(default_factory=list[Supernode], max_length=200)
    labels: dict[str, str] = Field(default_factory=dict, max_length=5000)

    def check(self, ids: set[str], features: set[str]) -> None:
        """Raise InputError unless every node id is in `ids` and every label's key in `features`."""
        for node_id in [*self.pinned, *(m for s in self.supernodes for m in s.members)]:
            if node_id not in ids:
                raise InputError(f"node {node_id[:120]!r} is not in this graph")
        for key, text in self.labels.items():
            if key not in features:
                raise InputError(f"feature {key[:120]!r} is not in this graph")
            if len(text) > MAX_LABEL:
                raise InputError(f"label of {key!r} is {len(text)} characters; at most {MAX_LABEL}")


def _write_atomic(path: Path, text: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class GraphStore:
    """Graphs on disk under `root`, with the loaded ones cached in memory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._graphs: dict[str, AttributionGraph] = {}
        self._lock = threading.Lock()

    def folder(self, graph_id: str) -> Path:
        """The folder of a graph; InputError unless `graph_id` is a well-formed id."""
        if not GRAPH_ID.fullmatch(graph_id):
            raise InputError(f"{graph_id[:40]!r} is not a graph id (12 hex digits)")
        return self.root / graph_id

    def exists(self, graph_id: str) -> bool:
        """Whether a graph with this id was saved."""
        return (
            GRAPH_ID.fullmatch(graph_id) is not None
            and (self.folder(graph_id) / "meta.json").is_file()
        )

    def add(self, graph: AttributionGraph, meta: GraphMeta) -> str:
        """Save a new graph; returns its id (also set on `meta`)."""
        graph_id = secrets.token_hex(6)
        folder = self.folder(graph_id)
        folder.mkdir()
        meta.id = graph_id
        meta.n_nodes, meta.n_edges = graph_size(graph)
        graph.save(folder / "graph.json")
        # meta.json last: a graph is listed only once it is complete.
        _write_atomic(folder / "meta.json", meta.model_dump_json(indent=1))
        with self._lock:
            self._graphs[graph_id] = graph
        return graph_id

    def list(self) -> list[GraphMeta]:
        """Every saved graph's metadata, newest first (unreadable folders are skipped)."""
        metas: list[GraphMeta] = []
        for child in self.root.iterdir():
            if child.is_dir() and GRAPH_ID.fullmatch(child.name):
                try:
                    metas.append(self.meta(child.name))
                except (OSError, ValueError):
                    continue
        return sorted(metas, key=lambda m: -m.created)

    def meta(self, graph_id: str) -> GraphMeta:
        """A graph's metadata (KeyError when there is none)."""
        path = self.folder(graph_id) / "meta.json"
        if not path.is_file():
            raise KeyError(graph_id)
        return GraphMeta.model_validate_json(path.read_text(encoding="utf-8"))

    def graph(self, graph_id: str) -> AttributionGraph:
        """A graph (KeyError when there is none)."""
        with self._lock:
            cached = self._graphs.get(graph_id)
        if cached is not None:
            return cached
        if not self.exists(graph_id):
            raise KeyError(graph_id)
        graph = AttributionGraph.load(self.folder(graph_id) / "graph.json")
        with self._lock:
            self._graphs[graph_id] = graph
        return graph

    def annotations(self, graph_id: str) -> Annotations:
        """A graph's annotations (empty when none were saved)."""
        path = self.folder(graph_id) / "annotations.json"
        if not path.is_file():
            return Annotations()
        return Annotations.model_validate_json(path.read_text(encoding="utf-8"))

    def save_annotations(self, graph_id: str, annotations: Annotations) -> None:
        """Replace a graph's annotations (atomically)."""
        if not self.exists(graph_id):
            raise KeyError(graph_id)
        _write_atomic(
            self.folder(graph_id) / "annotations.json", annotations.model_dump_json(indent=1)
        )


def now() -> float:
    """Seconds since the epoch (graph creation times)."""
    return time.time()
