"""In-process sandbox for tests: ``with run_sandbox(contacts=100) as sb: sb.url, sb.token, sb.control``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .server import SandboxServer


@contextmanager
def run_sandbox(*, host: str = "127.0.0.1", port: int = 0, rate_limits=False, **options) -> Iterator[SandboxServer]:
    """Start a sandbox on a free loopback port in a background thread; stop it on exit.

    Rate limits default to off here (fast functional tests); pass ``rate_limits=True`` or a dict
    such as ``{"tier": "professional"}`` or ``{"ten_secondly": 5}`` to enforce them. Other options:
    see ``SandboxServer``.
    """
    server = SandboxServer(host, port, rate_limits=rate_limits, **options).start()
    try:
        yield server
    finally:
        server.stop()
