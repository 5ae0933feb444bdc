"""An S3-compatible object store for tests: moto in server mode on loopback (a real HTTP endpoint),
optionally behind a TCP proxy that can drop every connection (the store briefly unavailable), and the
``aws_default`` Airflow connection that points ObjectStoragePath at it.

The amazon provider builds the s3fs filesystem of ``s3://<conn_id>@bucket/...`` from the connection:
``extra.endpoint_url`` (or ``extra.service_config.s3.endpoint_url``) is the endpoint, ``login``/``password``
the access key pair, ``extra.region_name`` the region, and ``extra.config_kwargs`` a botocore ``Config``
(here: no botocore retries and short timeouts, so an unavailable store fails within a second; with the
defaults botocore retries for about 7 s first).
"""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

KEY_ID = SECRET = "testing"  # moto's dummy credentials
REGION = "eu-north-1"
CONN_ENV = "AIRFLOW_CONN_AWS_DEFAULT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conn_json(endpoint_url: str) -> str:
    """The ``aws_default`` connection (Airflow's JSON form) for an S3-compatible endpoint."""
    return json.dumps({
        "conn_type": "aws",
        "login": KEY_ID,
        "password": SECRET,
        "extra": {
            "endpoint_url": endpoint_url,
            "region_name": REGION,
            "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 1}, "connect_timeout": 2, "read_timeout": 10},
        },
    })


def reset_object_stores() -> None:
    """Forget the filesystems Airflow attached per (protocol, conn id) in this process: the next path
    builds its filesystem from the connection as it is defined now (another endpoint per test)."""
    from airflow.sdk.io import store

    store._STORE_CACHE.clear()


@dataclass
class MotoS3:
    endpoint: str  # moto itself
    server: object

    def client(self, endpoint: str | None = None):
        import boto3

        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, region_name=REGION)

    def new_bucket(self, prefix: str = "raw-zone") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def keys(self, bucket: str) -> list[str]:
        out, token = [], None
        s3 = self.client()
        while True:
            page = s3.list_objects_v2(Bucket=bucket, **({"ContinuationToken": token} if token else {}))
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(out)
            token = page["NextContinuationToken"]

    def read(self, bucket: str, key: str) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


@contextlib.contextmanager
def moto_s3_server() -> Iterator[MotoS3]:
    """moto's S3 in server mode on 127.0.0.1 (a free port), stopped on exit."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield MotoS3(f"http://127.0.0.1:{port}", server)
    finally:
        server.stop()


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that can go down: :meth:`down` resets every open
    connection and every new one (the client sees the store vanish), :meth:`up` serves again."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.available = True
        self.dropped = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="flaky-proxy", daemon=True)
        self._thread.start()

    def down(self) -> None:
        with self._lock:
            self.available = False
            for conn in list(self._conns):
                _reset(conn)
            self._conns.clear()

    def up(self) -> None:
        with self._lock:
            self.available = True

    def close(self) -> None:
        self._stop.set()
        self.down()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._lock:
                if not self.available:
                    self.dropped += 1
                    _reset(client)
                    continue
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                except OSError:
                    _reset(client)
                    continue
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        socks = [a, b]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 0.5)
                if self._stop.is_set():
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(a)
                self._conns.discard(b)
            for s in socks:
                with contextlib.suppress(OSError):
                    s.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed or unreachable server does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


# ---------------------------------------------------------------- fixtures (import them into a test module)

@pytest.fixture(scope="module")
def moto_s3() -> Iterator[MotoS3]:
    with moto_s3_server() as moto:
        yield moto


@pytest.fixture(scope="module")
def flaky_proxy(moto_s3) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(int(moto_s3.endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@dataclass
class S3Zone:
    """A fresh bucket in moto and the raw-zone root URL on it, reached through ``endpoint``."""

    moto: MotoS3
    proxy: FlakyProxy
    bucket: str
    endpoint: str
    prefix: str = "raw"

    @property
    def root(self) -> str:
        return f"s3://aws_default@{self.bucket}/{self.prefix}"

    def keys(self) -> list[str]:
        """The bucket's keys relative to the zone's prefix."""
        return [k[len(self.prefix) + 1:] for k in self.moto.keys(self.bucket)]


def _zone(moto: MotoS3, proxy: FlakyProxy, endpoint: str, monkeypatch) -> Iterator[S3Zone]:
    proxy.up()
    monkeypatch.setenv(CONN_ENV, conn_json(endpoint))
    reset_object_stores()
    yield S3Zone(moto, proxy, moto.new_bucket(), endpoint)
    proxy.up()
    reset_object_stores()


@pytest.fixture()
def s3_zone(moto_s3, flaky_proxy, monkeypatch) -> Iterator[S3Zone]:
    """A new bucket; ``aws_default`` points straight at moto."""
    yield from _zone(moto_s3, flaky_proxy, moto_s3.endpoint, monkeypatch)


@pytest.fixture()
def flaky_s3_zone(moto_s3, flaky_proxy, monkeypatch) -> Iterator[S3Zone]:
    """A new bucket; ``aws_default`` points at the proxy in front of moto (``zone.proxy.down()`` / ``up()``)."""
    yield from _zone(moto_s3, flaky_proxy, flaky_proxy.endpoint, monkeypatch)


def release_after(marker, action, timeout: float = 30.0) -> threading.Thread:
    """In a thread: wait until the raw zone's test hook blocks (``marker`` exists), run ``action``, then
    release the blocked writer by deleting the marker (see ``hubspot_finance.rawzone._test_block``)."""
    import os
    import time

    def run():
        deadline = time.time() + timeout
        while not os.path.exists(marker):
            if time.time() > deadline:
                return
            time.sleep(0.02)
        try:
            action()
        finally:
            os.remove(marker)

    thread = threading.Thread(target=run, name="release-after", daemon=True)
    thread.start()
    return thread
