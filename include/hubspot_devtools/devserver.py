"""`make airflow`: Airflow standalone on localhost with the sandbox and both connections configured.

Connections are stored in Airflow's metadata database (not environment variables) so they show up
in the UI, where the HubSpot connection's Test button works (``[core] test_connection = Enabled``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from hubspot_devtools.local import REPO, airflow, airflow_env, sandbox_process

WORK = REPO / "var" / "airflow"


def configure(env: dict[str, str], sandbox_url: str, token: str, db_path: Path, log: Path) -> None:
    airflow(env, "db", "migrate", log=log)
    connections = {
        "hubspot_default": {"conn_type": "hubspot", "host": sandbox_url, "password": token,
                            "description": "The local HubSpot sandbox (make airflow)"},
        "finance_db": {"conn_type": "sqlite", "host": str(db_path), "description": "Finance tables (SQLite)"},
    }
    for conn_id, definition in connections.items():
        airflow(env, "connections", "delete", conn_id, log=log, check=False)
        airflow(env, "connections", "add", conn_id, "--conn-json", json.dumps(definition), log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8765)))
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    db_path = WORK / "finance.db"
    env = airflow_env(
        WORK / "home",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__HOST="127.0.0.1",  # localhost only: all-admins mode has no login
        AIRFLOW__API__PORT=str(args.port),
        # Links in logs and alerts, and where workers reach the execution API (default port 8080).
        AIRFLOW__API__BASE_URL=f"http://localhost:{args.port}",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        HUBSPOT_SYNC_RAW_ROOT=(WORK / "raw").as_uri(),
        HUBSPOT_SYNC_LAG_MARGIN_MINUTES=os.environ.get("HUBSPOT_SYNC_LAG_MARGIN_MINUTES", "0"),
    )
    with sandbox_process(WORK, port=args.sandbox_port) as (url, token):
        configure(env, url, token, db_path, WORK / "setup.log")
        print(f"HubSpot sandbox: {url}  (control API {url}/_sandbox/state)")
        print(f"Finance tables:  {db_path}")
        print(f"Airflow UI:      http://localhost:{args.port}  (no login needed: local all-admins mode)")
        print("Trigger 'hubspot_to_finance' from the UI; Admin > Connections > hubspot_default > Test checks the token.")
        print("Ctrl-C stops Airflow and the sandbox.", flush=True)
        # Its own process group, so stopping it also stops the scheduler, API server, workers ...
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"], env=env, start_new_session=True
        )
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)  # also when started in the background
        try:
            return proc.wait()
        except KeyboardInterrupt:
            print("Stopping Airflow ...", flush=True)
            return stop_group(proc)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


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
