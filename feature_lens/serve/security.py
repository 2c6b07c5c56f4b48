"""The explorer's request guard (an ASGI middleware) and response headers.

- `Host` must be one of the server's own names (defeats DNS rebinding: a hostile page whose name
  resolves to 127.0.0.1 still sends its own name as Host).
- A request that changes state (any method but GET/HEAD) must carry an `Origin` equal to the
  server's own origin, and must not be marked cross-site by `Sec-Fetch-Site`; a browser sends both
  on every such request, so a form or `fetch` from another site is refused.
- Bodies are limited to `max_body` bytes (checked against `Content-Length`, and again while the
  body is read by `read_json`).
- Every response carries a strict Content-Security-Policy (scripts and styles from this server
  only; no inline code, no eval; fetches to this server only), `nosniff`, no referrer, no framing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from starlette.requests import Request

from feature_lens.errors import InputError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """ASGI middleware: refuse foreign hosts, cross-site writes and large bodies; add headers."""

    def __init__(self, app: App, *, hosts: Collection[str], max_body: int) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.problem(scope["method"], headers)
        if problem is not None:
            status, text = problem
            await _plain(send, status, text)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *(h for h in message.get("headers", []) if h[0].lower() not in _OURS),
                    *HEADERS,
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def problem(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return 421, f"unknown host {host[:80]!r}; open the address the server printed"
        if method in ("GET", "HEAD"):
            return None
        origin = headers.get("origin", "").lower()
        if origin != f"http://{host}":
            return 403, "cross-site request refused (Origin is not this server)"
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site request refused (Sec-Fetch-Site)"
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, "send JSON (Content-Type: application/json)"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, f"request body over {self.max_body} bytes"
        return None


_OURS = {name for name, _ in HEADERS}


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_json(request: Request, max_body: int) -> Any:
    """The request's JSON body, read with a size cap (InputError when too large or not JSON)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise InputError(f"request body over {max_body} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks) or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"the request body is not JSON: {error}") from None
