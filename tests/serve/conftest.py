"""Fixtures for the explorer's tests: a tiny random model whose vocabulary holds an XSS payload,
with one dictionary of every kind, and the explorer app over it (graphs kept in a temp folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from feature_lens import Lens
from feature_lens.serve import GraphStore, create_app
from tests.conftest import full_dictionaries, make_model
from tests.dashboard.conftest import XSS_PROMPT, dataset_prompts, make_xss_tokenizer

HOST = "testserver"
ORIGIN = f"http://{HOST}"


@pytest.fixture(scope="session")
def serve_lens(tmp_path_factory: pytest.TempPathFactory) -> Lens:
    tokenizer = make_xss_tokenizer(tmp_path_factory.mktemp("serve-tokenizer"))
    model = make_model(tokenizer, seed=7)
    return Lens(model, full_dictionaries(model))


def make_app(lens: Lens, folder: Path, hosts: list[str] | None = None) -> Any:
    corpus = dataset_prompts(24)
    return create_app(
        lens, GraphStore(folder), hosts=hosts or [HOST], corpus=lambda: corpus, model_name="tiny"
    )


@pytest.fixture
def client(serve_lens: Lens, tmp_path: Path) -> Any:
    from starlette.testclient import TestClient

    with TestClient(make_app(serve_lens, tmp_path / "graphs")) as test_client:
        yield test_client


def post(client: Any, path: str, body: Any) -> Any:
    """A same-origin JSON POST, as the page sends it."""
    return client.post(path, json=body, headers={"Origin": ORIGIN})


def compute(client: Any, prompt: str = XSS_PROMPT, **extra: Any) -> str:
    """POST a prompt, wait for its job, return the graph id."""
    import time

    response = post(client, "/api/graphs", {"prompt": prompt, "max_nodes": 12, **extra})
    assert response.status_code == 202, response.text
    job = response.json()
    deadline = time.monotonic() + 60
    while job["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    return str(job["graph"])


# The dashboard tests' site (built once per session) for the static connectome and index tests.
from tests.dashboard.conftest import dash_graph, dash_lens, prompts, site  # noqa: E402, F401
