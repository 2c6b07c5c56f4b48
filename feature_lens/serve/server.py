"""Start the explorer: build the app over a Lens and run it on uvicorn (127.0.0.1 by default)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feature_lens.errors import InputError, LoadingError
from feature_lens.lens import Lens
from feature_lens.serve.app import create_app
from feature_lens.serve.store import GraphStore

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def host_names(host: str, port: int) -> list[str]:
    """The `Host` header values the server answers to."""
    names = [host] if host not in LOCAL_HOSTS else ["127.0.0.1", "localhost", "[::1]"]
    if host == "::1":
        names.append("[::1]")
    return [f"{name}:{port}" for name in names]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (for tests and `--port 0`)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def corpus_source(
    lens: Lens, is_zoo: bool, corpus_file: str | None, store: GraphStore
) -> Callable[[], Sequence[str]]:
    """Where feature examples come from: `corpus_file` lines, else the zoo's text for the zoo,
    else the prompts of the saved graphs."""
    if corpus_file is not None:
        path = Path(corpus_file)
        if not path.is_file():
            raise LoadingError(f"no corpus file at {corpus_file!r}")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return lambda: lines
    if is_zoo:
        from feature_lens.zoo import corpus_texts

        n_ctx = int(lens.model.cfg.n_ctx)
        return lambda: corpus_texts(256, seed=1, n_ctx=n_ctx)
    return lambda: [meta.prompt for meta in store.list()]


def build(
    lens: Lens,
    out: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str = "zoo",
    corpus: Callable[[], Sequence[str]] | None = None,
    max_tokens: int = 64,
) -> Any:
    """The app for `lens` with graphs kept under `out` (see `feature_lens.serve.app`)."""
    store = GraphStore(out)
    source = corpus or corpus_source(lens, model_name == "zoo", None, store)
    return create_app(
        lens,
        store,
        hosts=host_names(host, port),
        corpus=source,
        model_name=model_name,
        max_tokens=max_tokens,
    )


def serve(app: Any, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run `app` on uvicorn until interrupted."""
    import uvicorn

    if port < 0 or port > 65535:
        raise InputError(f"port {port} is not a TCP port (0-65535)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
