"""Make the Connections page's Test button work for connections without a port (Airflow 3.3.2).

The list page's Test button posts the row with ``"port": 0`` when the stored port is NULL (every
``hubspot`` connection, the ``sqlite`` one, anything made by the CLI or an environment variable). The
API server then sees "a different destination" and answers 400 "The host or port to test differs
from the stored connection" before the hook's ``test_connection`` ever runs.

Port 0 is never a destination anyone can reach, so reading it as "no port given" keeps Airflow's
safeguard (stored credentials are only reused for the stored host and port) and lets the test run.
:class:`PortZeroIsNoPort` is a plain ASGI middleware the plugin in ``plugins/`` mounts on the API
server's root app; it touches only ``POST …/api/v2/connections/test`` bodies with ``port: 0``.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

TEST_PATH_SUFFIX = "/api/v2/connections/test"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def without_port_zero(body: bytes) -> bytes | None:
    """The request body with ``"port": 0`` removed, or None when there is nothing to change."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or payload.get("port") != 0 or isinstance(payload.get("port"), bool):
        return None
    del payload["port"]
    return json.dumps(payload).encode()


class PortZeroIsNoPort:
    """ASGI middleware: a connection test that asks for port 0 means "the stored port"."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not scope.get("path", "").endswith(TEST_PATH_SUFFIX):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        fixed = without_port_zero(body)
        if fixed is not None:
            body = fixed
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """Hand out the buffered messages first, then whatever the server sends next (a disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive
