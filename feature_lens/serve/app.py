"""The explorer's web app (Starlette): one page, its static files, and a small JSON API.

    GET  /                                 the page (no inline code; scripts and styles are files)
    GET  /static/<name>                    explorer.js, explorer.css (a fixed list; no file paths)
    GET  /api/info                         model, sites, methods, limits
    GET  /api/graphs                       saved graphs, newest first
    POST /api/graphs                       {prompt, corrupted?, answers?, method, max_nodes} -> job
    GET  /api/jobs/<id>                    a job's stage, elapsed time, and its graph when done
    GET  /api/graphs/<id>                  {meta, view, annotations} (view: `feature_lens.serve.view`)
    POST /api/graphs/<id>/annotations      replace pinned nodes, supernodes and labels
    GET  /api/graphs/<id>/feature?node=ID  the side panel's data for a feature node
    POST /api/graphs/<id>/intervene        `InterventionRequest` -> top logits and continuations

Model work runs on one worker thread (`ModelWorker`); requests wait for it without blocking the
event loop. `Guard` (feature_lens.serve.security) checks hosts, origins and sizes first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from feature_lens.attribution import METHODS
from feature_lens.dashboard.data import FeatureId
from feature_lens.errors import FeatureLensError
from feature_lens.lens import Lens
from feature_lens.serve.compute import GraphRequest, ModelWorker
from feature_lens.serve.features import FeaturePanels, top_token_labels
from feature_lens.serve.intervene import InterventionRequest, intervene
from feature_lens.serve.security import Guard, read_json
from feature_lens.serve.store import Annotations, GraphStore
from feature_lens.serve.view import (
    feature_key,
    feature_nodes,
    graph_view,
    node_ids,
    node_record,
)

T = TypeVar("T")
STATIC = {
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}
MAX_BODY = 256 * 1024


@dataclass
class ExplorerState:
    """Everything the handlers share."""

    lens: Lens
    store: GraphStore
    worker: ModelWorker
    panels: FeaturePanels
    model_name: str
    max_body: int = MAX_BODY
    top_labels: dict[str, dict[str, str]] = field(default_factory=dict[str, dict[str, str]])

    async def run(self, fn: Callable[[], T]) -> T:
        """Run model work on the worker thread and wait for it."""
        return await asyncio.wrap_future(self.worker.submit(fn))


def _asset(name: str) -> str:
    return resources.files("feature_lens.serve").joinpath("assets", name).read_text("utf-8")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where or 'request'}: {first.get('msg', 'invalid')}"


def handler(
    fn: Callable[[ExplorerState, Request], Any],
) -> Callable[[Request], Any]:
    """Wrap an endpoint: pass the shared state; map errors to JSON with a status."""

    async def endpoint(request: Request) -> Response:
        state: ExplorerState = request.app.state.explorer
        try:
            return await fn(state, request)
        except ValidationError as error:
            return _error(400, _validation_message(error))
        except FeatureLensError as error:
            return _error(400, str(error))
        except KeyError:
            return _error(404, "not found")

    return endpoint


async def index(state: ExplorerState, request: Request) -> Response:
    return Response(_asset("index.html"), media_type="text/html; charset=utf-8")


async def static(state: ExplorerState, request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return _error(404, "not found")
    return Response(_asset(name), media_type=STATIC[name])


async def info(state: ExplorerState, request: Request) -> Response:
    cfg = state.lens.model.cfg
    return JSONResponse(
        {
            "model": state.model_name,
            "layers": int(cfg.n_layers),
            "sites": state.lens.sites,
            "methods": list(METHODS),
            "maxTokens": state.worker.max_tokens,
        }
    )


async def list_graphs(state: ExplorerState, request: Request) -> Response:
    return JSONResponse([m.model_dump() for m in state.store.list()])


async def new_graph(state: ExplorerState, request: Request) -> Response:
    body = GraphRequest.model_validate(await read_json(request, state.max_body))
    job = state.worker.start_graph(body)
    return JSONResponse(job.to_dict(), status_code=202)


async def job_status(state: ExplorerState, request: Request) -> Response:
    job = state.worker.jobs[request.path_params["job"]]
    return JSONResponse(job.to_dict())


def _labels(state: ExplorerState, graph_id: str, annotations: Annotations) -> dict[str, str]:
    return {**state.top_labels.get(graph_id, {}), **annotations.labels}


async def get_graph(state: ExplorerState, request: Request) -> Response:
    graph_id = request.path_params["graph"]
    meta = state.store.meta(graph_id)
    graph = state.store.graph(graph_id)
    if graph_id not in state.top_labels:
        features = feature_nodes(graph)
        labels = await state.run(lambda: top_token_labels(state.lens, features))
        state.top_labels[graph_id] = labels
    annotations = state.store.annotations(graph_id)
    view = graph_view(graph, _labels(state, graph_id, annotations))
    return JSONResponse(
        {"meta": meta.model_dump(), "view": view, "annotations": annotations.model_dump()}
    )


async def save_annotations(state: ExplorerState, request: Request) -> Response:
    graph_id = request.path_params["graph"]
    graph = state.store.graph(graph_id)
    annotations = Annotations.model_validate(await read_json(request, state.max_body))
    keys = {feature_key(site, index) for site, index in feature_nodes(graph)}
    annotations.check(node_ids(graph), keys)
    state.store.save_annotations(graph_id, annotations)
    return JSONResponse({"saved": True})


async def feature_panel(state: ExplorerState, request: Request) -> Response:
    graph_id = request.path_params["graph"]
    graph = state.store.graph(graph_id)
    node_id = request.query_params.get("node", "")
    node = node_record(graph, node_id)
    if node is None or node.kind != "feature" or node.index is None:
        return _error(404, "no such feature node in this graph")
    feature = FeatureId(node.site, node.index)
    data = await state.run(lambda: state.panels.panel(feature, graph, node_id))
    return JSONResponse(data)


async def intervention(state: ExplorerState, request: Request) -> Response:
    graph_id = request.path_params["graph"]
    meta = state.store.meta(graph_id)
    body = InterventionRequest.model_validate(await read_json(request, state.max_body))

    def work() -> dict[str, Any]:
        tokens = state.lens.to_tokens(meta.prompt)
        return intervene(state.lens, tokens, body).to_dict()

    return JSONResponse(await state.run(work))


def create_app(
    lens: Lens,
    store: GraphStore,
    *,
    hosts: Collection[str],
    corpus: Callable[[], Sequence[str]],
    model_name: str = "model",
    max_tokens: int = 64,
    max_body: int = MAX_BODY,
) -> Starlette:
    """The explorer app over `lens`, keeping graphs in `store`; `hosts` are the `host:port` names
    it answers to; `corpus` gives the texts for the feature panels' examples."""
    worker = ModelWorker(lens, store, max_tokens)
    state = ExplorerState(lens, store, worker, FeaturePanels(lens, corpus), model_name, max_body)
    routes = [
        Route("/", handler(index)),
        Route("/static/{name}", handler(static)),
        Route("/api/info", handler(info)),
        Route("/api/graphs", handler(list_graphs), methods=["GET"]),
        Route("/api/graphs", handler(new_graph), methods=["POST"]),
        Route("/api/jobs/{job}", handler(job_status)),
        Route("/api/graphs/{graph}", handler(get_graph)),
        Route("/api/graphs/{graph}/annotations", handler(save_annotations), methods=["POST"]),
        Route("/api/graphs/{graph}/feature", handler(feature_panel)),
        Route("/api/graphs/{graph}/intervene", handler(intervention), methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        yield
        worker.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, hosts=hosts, max_body=max_body)],  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.explorer = state
    return app
