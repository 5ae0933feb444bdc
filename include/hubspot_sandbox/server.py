"""The HTTP layer: a stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive) around the API objects.

The stdlib server is used on purpose: fault injection needs the raw socket (connection resets,
short bodies, slow responses) which ASGI servers hide.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from .admin import ControlApi
from .api import JSON_CT, HubSpotApi, Response
from .state import SandboxState


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms delayed-ACK stalls
    server_version = "hubspot-sandbox"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.sandbox.verbose:
            super().log_message(fmt, *args)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self):
        sb: SandboxServer = self.server.sandbox
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        body = self._body()
        if path.startswith("/_sandbox"):
            return self._send(sb.control_api.handle(self.command, path, body))
        drop = assoc_errors = None
        rule = sb.state.faults.match(self.command, self.path)
        if rule is not None:
            sb.state.stats.fault(rule.id)
            if rule.delay_s and sb._stopping.wait(rule.delay_s):
                return self._reset()
            if rule.action == "reset":
                sb.state.stats.record("fault", 0)
                return self._reset()
            if rule.action in ("respond", "short_body"):
                raw, ctype = rule.render_body()
                sb.state.stats.record("fault", rule.status or 200)
                return self._send_raw(rule.status or 200, raw, ctype, rule.headers,
                                      short=rule.action == "short_body")
            if rule.action == "drop_ids":
                drop = self._drop_ids(rule, body)
            if rule.action == "assoc_errors":
                assoc_errors = self._drop_ids(rule, body)
        resp = sb.api.handle(self.command, path, query, self.headers, body, drop_ids=drop,
                             assoc_error_ids=assoc_errors)
        for k, v in (rule.headers.items() if rule is not None else ()):
            resp.headers.setdefault(k, v)
        sb.state.stats.record(resp.kind, resp.status, resp.policy)
        for trigger in sb.state.triggers.count(resp.kind, resp.object_type, resp.status):
            sb.control_api.fire(trigger)  # before sending: the caller's next request sees the mutation
        self._send(resp)

    @staticmethod
    def _drop_ids(rule, body):
        if rule.drop_ids:
            return [str(x) for x in rule.drop_ids]
        import json

        try:
            ids = [str(i.get("id")) for i in json.loads(body).get("inputs", [])]
        except Exception:
            return []
        k = max(1, int(rule.drop_every or 2))
        return ids[k - 1::k]

    def _send(self, resp: Response):
        ctype = resp.headers.pop("Content-Type", JSON_CT)
        self._send_raw(resp.status, resp.encode(), ctype, resp.headers)

    def _send_raw(self, status: int, raw: bytes, ctype: str, headers: dict, short: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw) + (max(64, len(raw)) if short else 0)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(raw)
        if short:  # promised more bytes than sent, then hang up
            self.wfile.flush()
            self._reset(graceful=True)

    def _reset(self, graceful: bool = False):
        self.close_connection = True
        try:
            if graceful:
                self.connection.shutdown(socket.SHUT_RDWR)
            else:  # SO_LINGER 0: close sends RST, the client sees "connection reset by peer"
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _safe(self):
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _safe


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):  # connection resets are expected here
        pass


class SandboxServer:
    """A running (or startable) sandbox: ``url``, ``token``, ``control`` and ``stop()``.

    Options: ``seed``, ``contacts``, ``companies``, ``deals``, ``extra_properties``, ``search_lag_ms``,
    ``search_body_limit``, ``association_page_size``, ``max_url_length``, ``touch_on_associate``,
    ``frozen_clock_ms``, ``recent_activity_days`` (default 0: the seed alone, which ends in 2025); ``token``
    (default: random ``pat-na1-<uuid4>``), ``scopes``, ``rate_limits`` (bool or dict of ``LimitConfig``
    fields, e.g. ``{"tier": "starter", "ten_secondly": 10}``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None, scopes=None,
                 rate_limits=True, token_file: str | os.PathLike | None = None, verbose: bool = False,
                 **portal_options):
        self.state = SandboxState(token=token, scopes=scopes, rate_limits=rate_limits, **portal_options)
        self.api = HubSpotApi(self.state)
        self.control_api = ControlApi(self.state, self)
        self.verbose = verbose
        self.token_file = Path(token_file) if token_file else None
        self._host, self._port = host, port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "SandboxServer":
        self._httpd = _HTTPServer((self._host, self._port), _Handler)
        self._httpd.sandbox = self
        self._port = self._httpd.server_address[1]
        self._write_token_file()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"hubspot-sandbox-{self._port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        if self._httpd is None:
            self._httpd = _HTTPServer((self._host, self._port), _Handler)
            self._httpd.sandbox = self
            self._port = self._httpd.server_address[1]
            self._write_token_file()
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self):
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ accessors
    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def token(self) -> str:
        return self.state.tokens.primary

    @property
    def portal(self):
        return self.state.portal

    @property
    def control(self):
        from .control import SandboxControl

        return SandboxControl(self.url)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _token_rotated(self, _new: str) -> None:
        self._write_token_file()

    def _write_token_file(self) -> None:
        if self.token_file is None:
            return
        self.token_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.token_file.with_name(self.token_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.token + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.token_file)


def wait_until_up(url: str, timeout: float = 10.0) -> None:
    """Poll the health endpoint (for a sandbox started in another process)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/_sandbox/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
