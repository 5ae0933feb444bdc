"""`make airflow`: Airflow standalone on localhost with the sandbox and both connections configured.

Connections are stored in Airflow's metadata database (not environment variables) so they show up
in the UI, where the Test button works (``[core] test_connection = Enabled``). It says what it is
doing at each step, prints the URL only once Airflow's health check passes and the DAG is parsed,
and keeps Airflow's own output in ``var/airflow/airflow.log`` instead of the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from hubspot_devtools.local import REPO, airflow, airflow_env, interrupt, sandbox_process, say

WORK = REPO / "var" / "airflow"
DAG_ID = "hubspot_to_finance"
READY_TIMEOUT_S = 600  # a busy or slow machine: waiting beats failing (about 30 s when idle)



def persistent_secret(path: Path) -> str:
    """A 64-byte secret kept under var/airflow, so sessions survive a restart and Airflow does not warn."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


def install_day(path: Path, timezone: str) -> str:
    """Midnight of the day this local install was first started, in the account's time zone: the DAG's start date.

    With it, unpausing the DAG (the trigger form's "Unpause on trigger") does not run yesterday's
    interval at once ahead of the run the person asked for: the first nightly run is tonight's 02:00.
    """
    if not path.exists():
        path.write_text(datetime.now(ZoneInfo(timezone)).date().isoformat())
    return path.read_text().strip()


def executor_slots() -> int:
    """Task slots for the local executor: enough for the three parallel extracts, not 32 on 2 cores."""
    return max(4, 2 * (os.cpu_count() or 1))


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def configure(env: dict[str, str], sandbox_url: str, token: str, db_path: Path, log: Path) -> None:
    """The metadata database and both connections, in two CLI calls (each one imports Airflow: ~3 s)."""
    airflow(env, "db", "migrate", log=log)
    connections = {
        "hubspot_default": {"conn_type": "hubspot", "host": sandbox_url, "password": token,
                            "description": "The local HubSpot sandbox (make airflow)"},
        "finance_db": {"conn_type": "sqlite", "host": str(db_path), "description": "Finance tables (SQLite)"},
    }
    definitions = log.parent / "connections.json"
    definitions.touch(mode=0o600)
    definitions.write_text(json.dumps(connections))
    try:
        airflow(env, "connections", "import", "--overwrite", str(definitions), log=log)
    finally:
        definitions.unlink(missing_ok=True)


class PortTakenError(RuntimeError):
    """A port make airflow needs is used by another program; the message says which and how to pick another."""


def check_port_free(port: int, what: str, setting: str) -> None:
    """Fail at once, naming the port, rather than wait minutes for a server that cannot bind it."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise PortTakenError(f"port {port} ({what}) is used by another program: stop it, or pick another "
                                 f"port, e.g. {setting}={port + 1} make airflow") from None


def port_taken_in(log: Path, offset: int) -> bool:
    """Whether Airflow's output since ``offset`` says a server could not bind its port."""
    with log.open("rb") as fh:
        fh.seek(offset)
        return b"address already in use" in fh.read().lower()


def wait_until_ready(proc: subprocess.Popen, base: str, log: Path, timeout: float = READY_TIMEOUT_S,
                     log_offset: int = 0) -> None:
    """Until the health check reports every component healthy and the DAG is parsed (or fail with the log)."""
    started = time.monotonic()
    deadline = started + timeout
    seen: set[str] = set()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {proc.returncode}; see {log}")
        if port_taken_in(log, log_offset):
            raise PortTakenError(f"another program took a port Airflow needs while it started (address already "
                                 f"in use in {log}); start make airflow again, or pick another AIRFLOW_PORT")
        try:
            health = requests.get(f"{base}/api/v2/monitor/health", timeout=3).json()
            healthy = {name for name, part in health.items() if isinstance(part, dict) and part.get("status") == "healthy"}
            for name in sorted(healthy - seen):
                say(f"   {name.replace('_', ' ')}: healthy (after {time.monotonic() - started:.0f} s)")
            seen |= healthy
            if healthy >= {"metadatabase", "scheduler", "triggerer", "dag_processor"} and \
                    requests.get(f"{base}/api/v2/dags/{DAG_ID}", timeout=3).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Airflow was not ready after {timeout:.0f} s; see {log}")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    from hubspot_finance.config import SyncConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8765)))
    parser.add_argument("--workdir", type=Path, default=WORK, help="where everything lives (default var/airflow)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    db_path, airflow_log, setup_log = work / "finance.db", work / "airflow.log", work / "setup.log"
    timezone = SyncConfig.from_env().timezone
    env = airflow_env(
        work / "home",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__DEFAULT_TIMEZONE=timezone,
        AIRFLOW__CORE__PARALLELISM=str(executor_slots()),
        AIRFLOW__API__HOST="127.0.0.1",  # localhost only: all-admins mode has no login
        AIRFLOW__API__PORT=str(args.port),
        # Links in logs and alerts, and where workers reach the execution API (default port 8080).
        AIRFLOW__API__BASE_URL=f"http://localhost:{args.port}",
        AIRFLOW__API_AUTH__JWT_SECRET=persistent_secret(work / "jwt-secret"),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        HUBSPOT_SYNC_RAW_ROOT=(work / "raw").as_uri(),
        HUBSPOT_SYNC_LAG_MARGIN_MINUTES=os.environ.get("HUBSPOT_SYNC_LAG_MARGIN_MINUTES", "0"),
        HUBSPOT_SYNC_START_DATE=os.environ.get("HUBSPOT_SYNC_START_DATE") or install_day(work / "installed-on", timezone),
    )
    try:
        check_port_free(args.port, "the Airflow UI", "AIRFLOW_PORT")
        check_port_free(args.sandbox_port, "the HubSpot sandbox", "SANDBOX_PORT")
    except PortTakenError as err:
        say(f"make airflow failed: {err}")
        return 1
    say(f"1. starting the HubSpot sandbox on port {args.sandbox_port} (with two weeks of recent edits)")
    with sandbox_process(work, port=args.sandbox_port) as (url, token):
        say("2. preparing Airflow's database and the connections hubspot_default and finance_db")
        configure(env, url, token, db_path, setup_log)
        say(f"3. starting Airflow (scheduler, API server, dag-processor, triggerer; {executor_slots()} task slots); "
            f"its output goes to {_shown(airflow_log)}")
        log_offset = airflow_log.stat().st_size if airflow_log.exists() else 0
        with airflow_log.open("a") as out:
            # Its own process group, so stopping it also stops the scheduler, API server, workers ...
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, start_new_session=True,
                stdout=out, stderr=subprocess.STDOUT,
            )
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, interrupt)  # also when started in the background
        try:
            wait_until_ready(proc, f"http://127.0.0.1:{args.port}", airflow_log, log_offset=log_offset)
            say(f"Ready in {time.monotonic() - started:.0f} s.")
            say(f"  Airflow UI:      http://localhost:{args.port}  (no login: local all-admins mode)")
            say(f"  HubSpot sandbox: {url}  (change it: make sandbox-edit)")
            say(f"  Finance tables:  {db_path}")
            say(f"  Times: the DAG runs at {SyncConfig.from_env().schedule!r} {timezone}; pick {timezone} with the "
                "clock button at the UI's bottom left to read every time in it.")
            say("Trigger 'hubspot_to_finance' from the UI. Ctrl-C stops Airflow and the sandbox.")
            return proc.wait()
        except KeyboardInterrupt:
            say("Stopping Airflow ...")
            return stop_group(proc)
        except RuntimeError as err:
            say(f"make airflow failed: {err}")
            stop_group(proc)
            return 1



def stop_group(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # children that outlived the standalone process
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return 130


if __name__ == "__main__":
    sys.exit(main())
