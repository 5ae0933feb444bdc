"""`make cluster`: the production layout on loopback — CeleryExecutor, Redis, PostgreSQL, S3.

Every part is a separate process, as on separate machines: Redis as the Celery broker (our own
instance, own port and data dir), Airflow's metadata database in its own PostgreSQL database, the
API server, scheduler, dag-processor and triggerer, and two Celery workers, each with its own
hostname, ``AIRFLOW_HOME`` and temp dir (so nothing on local disk is shared between them). The raw
zone and the task logs live in an S3-compatible object store (moto in server mode) reached through
the amazon provider (``s3://aws_default@…``). Connections: ``hubspot_default`` (the sandbox, with
``shared_limits`` off: the workers cannot share a host-wide limiter file), ``finance_db``
(PostgreSQL) and ``aws_default`` (the object store). Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import requests
from cryptography.fernet import Fernet

from hubspot_devtools.local import BIN, REPO, free_port, interrupt, sandbox_process, say

DAG_ID = "hubspot_to_finance"
BUCKET = "hubspot-sync"
PG_DSN = os.environ.get("HUBSPOT_CLUSTER_PG", "postgresql://postgres@127.0.0.1:5432")
WORKERS = ("worker-1", "worker-2")
# moto accepts any keys; these are its documented dummies, not secrets.
S3_KEYS = {"login": "testing", "password": "testing"}


def node_name() -> str:
    """``[core] hostname_callable``: each process says which machine of the cluster it plays."""
    return os.environ.get("HUBSPOT_CLUSTER_NODE") or socket.getfqdn()



@dataclass
class Cluster:
    """Where the parts of one cluster live and how to reach them."""

    root: Path
    api_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    s3_port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)
    database: str = field(default_factory=lambda: f"hubspot_cluster_{secrets.token_hex(4)}")
    s3_endpoint: str = ""  # what the nodes use: the store itself, or something in front of it (a test's proxy)
    finance_database: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # One JWT secret and one Fernet key for every node (each home would otherwise make its own).
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(64))
    fernet_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def s3(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def sqlalchemy_url(self, database: str) -> str:
        return f"{PG_DSN.replace('postgresql://', 'postgresql+psycopg://', 1)}/{database}"

    def raw_root(self) -> str:
        return f"s3://aws_default@{BUCKET}/raw"

    def env(self, node: str, home: Path) -> dict[str, str]:
        """The configuration every Airflow process shares, plus this node's own home and temp dir."""
        tmp = home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HUBSPOT_SYNC_"))}
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "TMPDIR": str(tmp),
            "HUBSPOT_CLUSTER_NODE": node,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "hubspot_devtools.cluster.node_name",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sqlalchemy_url(self.database),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.sqlalchemy_url(self.database)}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{self.api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # Task logs in the object store: the API server reads them from there, not from a worker.
            "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
            "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": f"s3://{BUCKET}/logs",
            "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # A worker killed with -9 stops heartbeating; notice it in seconds, not five minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": os.environ.get("HUBSPOT_CLUSTER_HEARTBEAT_TIMEOUT", "30"),
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", **S3_KEYS,
                                                    "extra": {"endpoint_url": self.s3_endpoint or self.s3,
                                                              "region_name": "eu-north-1"}}),
            "HUBSPOT_SYNC_RAW_ROOT": self.raw_root(),
            "HUBSPOT_SYNC_LAG_MARGIN_MINUTES": "0",
            "HUBSPOT_SYNC_PARALLEL_EXTRACTS": "3",
            "HUBSPOT_SYNC_RETRY_DELAY_MINUTES": os.environ.get("HUBSPOT_SYNC_RETRY_DELAY_MINUTES", "0.2"),
            "HUBSPOT_SYNC_START_DATE": time.strftime("%Y-%m-%d"),
        })
        return env


def wait_until(predicate, timeout: float, what: str, procs: dict[str, subprocess.Popen] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in (procs or {}).items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}")
        try:
            if predicate():
                return
        except (requests.ConnectionError, requests.Timeout, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.5)


def start(cluster: Cluster, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    log = (cluster.root / "logs" / f"{name}.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cluster.root, start_new_session=True)
    cluster.processes[name] = proc
    return proc


def stop_all(cluster: Cluster) -> None:
    """SIGTERM every process group we started (workers first), then SIGKILL what is left."""
    order = sorted(cluster.processes, key=lambda n: (not n.startswith("worker"), n))
    for name in order:
        try:
            os.killpg(cluster.processes[name].pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    for name in order:
        proc = cluster.processes[name]
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def databases(cluster: Cluster) -> Iterator[None]:
    """Airflow's metadata database and the finance database, new for this cluster, dropped after."""
    cluster.finance_database = f"{cluster.database}_finance"
    for db in (cluster.database, cluster.finance_database):
        psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        psql(f'CREATE DATABASE "{db}"')
    try:
        yield
    finally:
        if not os.environ.get("HUBSPOT_CLUSTER_KEEP_DATABASES"):
            for db in (cluster.database, cluster.finance_database):
                psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def start_services(cluster: Cluster) -> None:
    """Redis (our own instance) and the S3 store, with the bucket."""
    redis_dir = cluster.root / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    start(cluster, "redis", [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port",
                             str(cluster.redis_port), "--dir", str(redis_dir), "--save", "", "--appendonly", "no"])
    start(cluster, "s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(cluster.s3_port)])
    wait_until(lambda: socket.create_connection(("127.0.0.1", cluster.redis_port), timeout=1).close() or True, 30,
               "Redis", cluster.processes)
    wait_until(lambda: requests.get(cluster.s3, timeout=2).status_code < 500, 60, "the S3 store", cluster.processes)
    import boto3

    boto3.client("s3", endpoint_url=cluster.s3, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="eu-north-1").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})


def configure_airflow(cluster: Cluster, env: dict[str, str], sandbox_url: str, token: str) -> None:
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, cwd=cluster.root)
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(PG_DSN)
    connections = {
        "hubspot_default": {"conn_type": "hubspot", "host": sandbox_url, "password": token,
                            "description": "The HubSpot sandbox (make cluster)", "extra": {"shared_limits": False}},
        "finance_db": {"conn_type": "postgres", "host": info.get("host", "127.0.0.1"), "port": int(info.get("port", 5432)),
                       "login": info.get("user", "postgres"), "password": info.get("password"),
                       "schema": cluster.finance_database, "description": "Finance tables (PostgreSQL)"},
    }
    definitions = cluster.root / "connections.json"
    definitions.touch(mode=0o600)
    definitions.write_text(json.dumps(connections))
    try:
        subprocess.run([airflow, "connections", "import", "--overwrite", str(definitions)], env=env, check=True,
                       capture_output=True, cwd=cluster.root)
    finally:
        definitions.unlink(missing_ok=True)


def start_airflow(cluster: Cluster) -> None:
    airflow = str(BIN / "airflow")
    for node, argv in (("api-server", [airflow, "api-server"]), ("scheduler", [airflow, "scheduler"]),
                       ("dag-processor", [airflow, "dag-processor"]), ("triggerer", [airflow, "triggerer"])):
        start(cluster, node, argv, cluster.env(node, cluster.root / "nodes" / node))
    for node in WORKERS:
        start(cluster, node, [airflow, "celery", "worker", "--celery-hostname", f"{node}@cluster", "--concurrency", "2"],
              cluster.env(node, cluster.root / "nodes" / node))


def ready(cluster: Cluster) -> bool:
    health = requests.get(f"{cluster.api}/api/v2/monitor/health", timeout=3).json()
    healthy = all(health.get(part, {}).get("status") == "healthy"
                  for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))
    return healthy and requests.get(f"{cluster.api}/api/v2/dags/{DAG_ID}", timeout=3).status_code == 200


@contextmanager
def running_cluster(root: Path, *, sandbox_args: list[str] = (),
                    s3_front: Callable[[int], str] | None = None) -> Iterator[Cluster]:
    """Start every part, yield when the API answers and the DAG is parsed; stop everything after.

    ``s3_front(port)`` may put something between the nodes and the store and return its URL.
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    cluster = Cluster(root)
    with ExitStack() as stack:
        stack.callback(stop_all, cluster)
        say(f"1. Redis on {cluster.redis_port} (the Celery broker) and the S3 store (moto) on {cluster.s3_port}")
        start_services(cluster)
        cluster.s3_endpoint = s3_front(cluster.s3_port) if s3_front else cluster.s3
        say(f"2. PostgreSQL databases {cluster.database} (Airflow) and {cluster.database}_finance (finance tables)")
        stack.enter_context(databases(cluster))
        url, token = stack.enter_context(sandbox_process(root, port=cluster.sandbox_port, args=list(sandbox_args)))
        cluster.sandbox_url, cluster.token = url, token
        say("3. migrating Airflow's database and adding the connections")
        configure_airflow(cluster, cluster.env("setup", root / "nodes" / "setup"), url, token)
        say(f"4. starting the API server, scheduler, dag-processor, triggerer and {len(WORKERS)} Celery workers")
        start_airflow(cluster)
        wait_until(lambda: ready(cluster), 240, "Airflow", cluster.processes)
        yield cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "var" / "cluster")
    args = parser.parse_args(argv)
    shutil.rmtree(args.workdir, ignore_errors=True)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, interrupt)  # `kill` stops it as Ctrl-C does
    try:
        with running_cluster(args.workdir) as cluster:
            say(f"Ready in {time.monotonic() - started:.0f} s.")
            say(f"  Airflow UI:      http://localhost:{cluster.api_port}  (no login: local all-admins mode)")
            say(f"  HubSpot sandbox: {cluster.sandbox_url}")
            say(f"  Raw zone:        {cluster.raw_root()} (S3 at {cluster.s3}; task logs under s3://{BUCKET}/logs)")
            say(f"  Finance tables:  {PG_DSN}/{cluster.finance_database}")
            say(f"  Workers:         {', '.join(WORKERS)}; logs of every part under {args.workdir / 'logs'}")
            say("Ctrl-C stops everything.")
            while all(p.poll() is None for p in cluster.processes.values()):
                time.sleep(1)
            dead = [n for n, p in cluster.processes.items() if p.poll() is not None]
            say(f"stopped: {', '.join(dead)} exited; see {args.workdir / 'logs'}")
            return 1
    except KeyboardInterrupt:
        say("Stopping the cluster ...")
        return 130



if __name__ == "__main__":
    sys.exit(main())
