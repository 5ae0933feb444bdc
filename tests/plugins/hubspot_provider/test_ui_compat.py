"""The connection-test fix: the list page's ``port: 0`` means "the stored port" (Airflow 3.3.2 answers 400 otherwise)."""

from __future__ import annotations

import asyncio
import json

from hubspot_provider.ui_compat import PortZeroIsNoPort, without_port_zero

ROW = {"conn_type": "hubspot", "connection_id": "hubspot_default", "host": "http://127.0.0.1:8765", "password": "***",
       "port": 0, "login": "", "schema": "", "extra": "{}"}


def call(path: str, body: bytes, chunks: int = 1, method: str = "POST") -> tuple[bytes, dict]:
    """Send ``body`` through the middleware to an ASGI app that records what it received."""
    seen = {}

    async def app(scope, receive, send):
        parts = []
        while True:
            message = await receive()
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen["body"], seen["headers"] = b"".join(parts), dict(scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    size = max(1, len(body) // chunks + 1)
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"content-length", str(len(body)).encode())]}
    asyncio.run(PortZeroIsNoPort(app)(scope, receive, send))
    return seen["body"], seen["headers"]


def test_a_test_request_with_port_zero_loses_the_port():
    body, headers = call("/api/v2/connections/test", json.dumps(ROW).encode(), chunks=3)
    sent = json.loads(body)
    assert "port" not in sent and sent["host"] == ROW["host"] and sent["password"] == "***"
    assert headers[b"content-length"] == str(len(body)).encode()


def test_other_requests_pass_untouched():
    raw = json.dumps(ROW).encode()
    assert call("/api/v2/connections", raw)[0] == raw  # saving a connection keeps what was typed
    assert call("/api/v2/connections/test", raw, method="GET")[0] == raw
    real_port = json.dumps({**ROW, "port": 5432}).encode()
    assert call("/api/v2/connections/test", real_port)[0] == real_port


def test_only_a_json_object_with_port_zero_changes():
    assert without_port_zero(b"not json") is None
    assert without_port_zero(b"[0]") is None
    assert without_port_zero(json.dumps({**ROW, "port": None}).encode()) is None
    assert without_port_zero(json.dumps({**ROW, "port": False}).encode()) is None
