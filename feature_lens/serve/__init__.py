"""`feature-lens serve`: an interactive, offline circuit explorer over a Lens (see docs/explorer.md).

from feature_lens.serve import build, serve
app = build(lens, "explorer-graphs")     # a Starlette app; graphs are saved under the folder
serve(app, port=8000)                    # uvicorn on 127.0.0.1
"""

from feature_lens.serve.app import create_app
from feature_lens.serve.intervene import InterventionRequest, Target, intervene
from feature_lens.serve.server import build, free_port, serve
from feature_lens.serve.store import Annotations, GraphStore
from feature_lens.serve.view import graph_view

__all__ = [
    "Annotations",
    "GraphStore",
    "InterventionRequest",
    "Target",
    "build",
    "create_app",
    "free_port",
    "graph_view",
    "intervene",
    "serve",
]
