"""Operate it from Airflow: the real scheduler, dag-processor, triggerer and API server
(`airflow standalone`), driven only through the REST API as a person's UI would.

One Airflow for the module (start-up is the slow part), three runs:
1. a manual run with ``logical_date: null`` → success; finance tables filled; the run summary is the
   load task's XCom and the extras of the asset events;
2. a run whose parameters pass the form but not the code (end before start) → ``plan`` fails at
   try 1 with one clear ERROR line, the failure notifiers fire (log block, custom notifier, e-mail);
3. a run after the sandbox revoked the token → fails at once without retries, the message names
   the fix, the notifiers fire again;
and, around them, the asset events a downstream DAG is scheduled on (only for tables a run loaded,
none on a dry run). The deadline alert under the real triggerer is in test_ui.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from e2e_support import AirflowApi

from hubspot_sandbox.testing import run_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "hubspot_to_finance"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

# Downstream DAGs as an invoicing team would write them: scheduled on one finance table each.
CONSUMER_DAGS = '''
from airflow.sdk import Asset, dag, task

for table in ("contracts", "customers"):

    @dag(dag_id=f"after_{table}", schedule=[Asset(f"finance://finance_db/{table}")], catchup=False)
    def consumer():
        @task
        def react():
            return "ok"

        react()

    consumer()
'''

NOTIFIER_MODULE = '''
import json, os
from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    """A custom notifier (HUBSPOT_SYNC_ALERT_NOTIFIER) that appends one JSON line per failure."""

    def notify(self, context):
        with open(os.environ["E2E_NOTIFIED_FILE"], "a") as fh:
            fh.write(json.dumps({"task_id": context["ti"].task_id, "run_id": context["run_id"],
                                 "exception": str(context.get("exception"))}) + "\\n")
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: records each message's recipients and body."""

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.reply("220 e2e ESMTP")
        rcpt, data = [], None
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            upper = cmd.upper()
            if upper.startswith("EHLO"):
                self.wfile.write(b"250-e2e\r\n250 8BITMIME\r\n")
            elif upper.startswith("HELO") or upper.startswith("MAIL") or upper.startswith("RSET") or upper.startswith("NOOP"):
                self.reply("250 OK")
            elif upper.startswith("RCPT"):
                rcpt.append(cmd.split(":", 1)[1].strip(" <>"))
                self.reply("250 OK")
            elif upper == "DATA":
                self.reply("354 go ahead")
                lines = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                    lines.append(chunk.decode(errors="replace"))
                self.server.messages.append({"to": rcpt, "data": "".join(lines)})
                rcpt = []
                self.reply("250 queued")
            elif upper == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


class FakeSMTP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Airflow(AirflowApi):
    """`airflow standalone` in its own process group, and the REST client for it."""

    def __init__(self, root: Path, env: dict[str, str], port: int):
        super().__init__(f"http://127.0.0.1:{port}")
        self.root, self.env, self.port = root, env, port
        self.log_path = root / "standalone.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 150) -> None:
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [AIRFLOW, "standalone"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"airflow standalone exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                r = self.http.get(f"{self.api}/dags/{DAG_ID}", timeout=5)
                if r.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Airflow did not serve {DAG_ID} within {timeout} s:\n{self.tail()}")
            time.sleep(1)

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever survived in the group (workers, api server children)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        self._log.close()

    # -- REST (beyond AirflowApi) ------------------------------------------------------------
    def diagnostics(self) -> str:
        return self.tail()

    def log(self, run_id: str, task_id: str, try_number: int) -> str:
        r = self.http.get(
            f"{self.api}{self.run_path(run_id)}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"}, headers={"Accept": "application/json"}, timeout=30,
        )
        assert r.status_code == 200, r.text[:500]
        lines = []
        for item in r.json()["content"]:
            if isinstance(item, str):
                lines.append(item)
            else:
                extra = {k: v for k, v in item.items() if k not in ("event", "timestamp", "level", "logger", "filename", "lineno")}
                lines.append(f"{item.get('level', '')} {item.get('event', '')} {extra if extra else ''}".strip())
        return "\n".join(lines)


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(seed=11, contacts=60, companies=15, deals=30) as sb:
        yield sb


@pytest.fixture(scope="module")
def smtp():
    server = FakeSMTP()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, sandbox, smtp):
    root = tmp_path_factory.mktemp("standalone")
    (root / "e2e_notifier.py").write_text(NOTIFIER_MODULE)
    dags = root / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").symlink_to(REPO / "dags" / f"{DAG_ID}.py")
    (dags / "consumers.py").write_text(CONSUMER_DAGS)
    port = free_port()
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("AIRFLOW", "HUBSPOT_SYNC_"))]:
        del env[key]  # nothing from the test process's own (unit-test) Airflow configuration
    env.update(
        {
            "AIRFLOW_HOME": str(root / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            # Workers reach the execution API through the base URL (default http://localhost:8080).
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW_CONN_HUBSPOT_DEFAULT": json.dumps({"conn_type": "hubspot", "host": sandbox.url, "password": sandbox.token}),
            "AIRFLOW_CONN_FINANCE_DB": json.dumps({"conn_type": "sqlite", "host": str(root / "finance.db")}),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.server_address[1],
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@example.com"},
            }),
            # No scheduled run during the test (next Feb 29 after the start date is in 2028).
            "HUBSPOT_SYNC_SCHEDULE": "0 2 29 2 *",
            "HUBSPOT_SYNC_RAW_ROOT": (root / "raw").as_uri(),
            "HUBSPOT_SYNC_LAG_MARGIN_MINUTES": "0",
            "HUBSPOT_SYNC_ALERT_EMAIL": "finance-ops@example.com, data@example.com",
            "HUBSPOT_SYNC_ALERT_NOTIFIER": "e2e_notifier.RecordingNotifier",
            "E2E_NOTIFIED_FILE": str(root / "notified.jsonl"),
            "PYTHONPATH": os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    (root / "plugins").mkdir()
    af = Airflow(root, env, port)
    af.finance_db = root / "finance.db"
    af.notified = root / "notified.jsonl"
    started = time.monotonic()
    try:
        af.start()
        af.startup_seconds = time.monotonic() - started
        yield af
    finally:
        af.stop()


def asset_events(af, run_id: str) -> list[dict]:
    """The run's asset events. Airflow 3.3.2 answers 500 while a run they created has not started yet
    (its start_date is null in the response model), so ask again until it answers."""
    deadline = time.monotonic() + 60
    while True:
        r = af.http.get(f"{af.api}/assets/events", params={"source_dag_id": DAG_ID, "source_run_id": run_id}, timeout=30)
        if r.status_code == 200:
            return r.json()["asset_events"]
        assert time.monotonic() < deadline, f"GET /assets/events: {r.status_code} {r.text[:300]}"
        time.sleep(1)


def notifications(af) -> list[dict]:
    if not af.notified.exists():
        return []
    return [json.loads(line) for line in af.notified.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return result


def test_rest_api_needs_no_token_in_all_admins_mode(airflow):
    # The all-admins middleware issues a token itself: no POST /auth/token needed.
    assert requests.get(f"{airflow.api}/dags/{DAG_ID}", timeout=10).status_code == 200
    dag = airflow.get(f"/dags/{DAG_ID}")
    assert dag["is_paused"] is False and dag["max_active_runs"] == 1
    details = airflow.get(f"/dags/{DAG_ID}/details")
    assert details["timetable_summary"] and details["catchup"] is False


def test_manual_run_without_logical_date_succeeds_and_reports_its_summary(airflow, sandbox):
    started = time.monotonic()
    run = airflow.trigger({"dry_run": False})
    assert run["logical_date"] is None
    run = airflow.wait_run(run["dag_run_id"])
    tis = airflow.task_instances(run["dag_run_id"])
    assert run["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert all(ti["state"] == "success" for ti in tis.values())

    # The finance tables hold what HubSpot holds.
    con = sqlite3.connect(airflow.finance_db)
    try:
        counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("customers", "companies", "contracts")}
        sync_runs = con.execute("SELECT run_id FROM sync_runs").fetchall()
    finally:
        con.close()
    assert counts["customers"] > 0 and counts["companies"] > 0 and counts["contracts"] > 0
    assert (run["dag_run_id"],) in sync_runs

    # The run summary without reading logs: the load task's XCom ...
    xcom = airflow.get(f"{airflow.run_path(run['dag_run_id'])}/taskInstances/load/xcomEntries/return_value")
    summary = xcom["value"]
    if isinstance(summary, str):
        summary = json.loads(summary)
    assert summary["run_id"] == run["dag_run_id"] and summary["status"] == "success"
    assert summary["mode"] == "full"
    assert set(summary["objects"]) == {"contacts", "deals", "companies"}
    assert sum(o["inserted"] for o in summary["objects"].values()) == sum(counts.values())
    assert set(summary["windows"]) == {"contacts", "deals", "companies"}
    (airflow.root / "summary.json").write_text(json.dumps(summary, indent=2, default=str))

    # ... and the asset events' extras.
    events = asset_events(airflow, run["dag_run_id"])
    by_uri = {e["uri"]: e for e in events}  # exactly as the README writes them
    assert set(by_uri) == {f"finance://finance_db/{t}" for t in ("customers", "companies", "contracts")}
    for uri, event in by_uri.items():
        table = uri.rsplit("/", 1)[1]
        assert event["extra"]["run_id"] == run["dag_run_id"] and event["extra"]["mode"] == "full"
        assert event["extra"]["inserted"] == counts[table]
    (airflow.root / "asset_events.json").write_text(json.dumps(events, indent=2, default=str))

    # One XCom row (not one per key of the summary), and a log a person can follow: phases as groups,
    # the summary as one table at the top level, printed once, no one-line dict, never the token.
    xcoms = airflow.get(f"{airflow.run_path(run['dag_run_id'])}/taskInstances/load/xcomEntries")["xcom_entries"]
    assert [x["key"] for x in xcoms] == ["return_value"]
    load_log = airflow.log(run["dag_run_id"], "load", 1)
    assert "::group::Load the staged rows" in load_log and "::group::Run summary" not in load_log
    assert load_log.count(f"HubSpot sync {run['dag_run_id']}: success, full run, loaded in one transaction") == 1
    assert "Returned value was" not in load_log
    extract_log = airflow.log(run["dag_run_id"], "extract_contacts", 1)
    assert "::group::Extract contacts: full window" in extract_log and "daily budget left" in extract_log
    for task_id, ti in tis.items():
        assert sandbox.token not in airflow.log(run["dag_run_id"], task_id, ti["try_number"])
    airflow.first_run_seconds = time.monotonic() - started


def runs_of(af, dag_id: str) -> list[dict]:
    return af.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]


def events_of(af, run_id: str) -> dict[str, dict]:
    return {e["uri"]: e["extra"] for e in asset_events(af, run_id)}


def test_asset_events_wake_only_the_consumers_of_tables_a_run_loaded(airflow):
    # The full run above loaded all three tables: each consumer ran once.
    wait_for(lambda: len(runs_of(airflow, "after_contracts")) == 1 and len(runs_of(airflow, "after_customers")) == 1,
             timeout=60, what="the consumers of the first full run")

    dry = airflow.wait_run(airflow.trigger({"objects": ["deals"], "dry_run": True})["dag_run_id"])
    assert dry["state"] == "success"
    assert events_of(airflow, dry["dag_run_id"]) == {}  # a dry run publishes nothing

    deals = airflow.wait_run(airflow.trigger({"objects": ["deals"]})["dag_run_id"])
    assert deals["state"] == "success"
    events = events_of(airflow, deals["dag_run_id"])
    assert set(events) == {"finance://finance_db/contracts"}  # deals only: contracts only
    assert events["finance://finance_db/contracts"]["object"] == "deals"
    assert {"inserted", "updated", "unchanged", "rejected", "deleted"} <= set(events["finance://finance_db/contracts"])
    wait_for(lambda: len(runs_of(airflow, "after_contracts")) == 2, timeout=60, what="the contracts consumer")
    time.sleep(5)  # time for the scheduler to (wrongly) start the customers consumer too
    assert len(runs_of(airflow, "after_customers")) == 1


def test_invalid_parameters_fail_plan_at_once_with_the_reason(airflow, smtp):
    before = len(smtp.messages)
    run = airflow.trigger({"start": "2026-11-02", "end": "2026-11-01"})
    run = airflow.wait_run(run["dag_run_id"])
    assert run["state"] == "failed"
    tis = airflow.task_instances(run["dag_run_id"])
    assert tis["plan"]["state"] == "failed" and tis["plan"]["try_number"] == 1  # no retry
    log = airflow.log(run["dag_run_id"], "plan", 1)
    assert "Invalid trigger parameters: end (2026-11-01) must be after start (2026-11-02)" in log
    assert "HUBSPOT SYNC FAILED: task plan of run " + run["dag_run_id"] in log
    # The custom notifier and the e-mail notifier fired, once.
    recorded = wait_for(lambda: [n for n in notifications(airflow) if n["run_id"] == run["dag_run_id"]], what="notifier")
    assert recorded == [{"task_id": "plan", "run_id": run["dag_run_id"],
                         "exception": "end (2026-11-01) must be after start (2026-11-02)"}]
    mails = wait_for(lambda: smtp.messages[before:], what="e-mail")
    assert sorted(mails[0]["to"]) == ["data@example.com", "finance-ops@example.com"]
    assert "hubspot_to_finance failed: plan" in mails[0]["data"]


def test_revoked_token_fails_without_retries_and_names_the_fix(airflow, sandbox, smtp):
    before = len(smtp.messages)
    sandbox.control.revoke_token()
    run = airflow.trigger({})
    run = airflow.wait_run(run["dag_run_id"])
    assert run["state"] == "failed"
    tis = airflow.task_instances(run["dag_run_id"])
    failed = [t for t, ti in tis.items() if ti["state"] == "failed"]
    assert failed == ["plan"], {t: ti["state"] for t, ti in tis.items()}
    assert tis["plan"]["try_number"] == 1 and tis["plan"]["max_tries"] >= 1  # retries configured, none used
    log = airflow.log(run["dag_run_id"], "plan", 1)
    assert "HubSpotAuthError" in log and "rotate" in log.lower()
    assert "Retry policy decision" in log
    assert sandbox.token not in log
    recorded = wait_for(lambda: [n for n in notifications(airflow) if n["run_id"] == run["dag_run_id"]], what="notifier")
    assert recorded[0]["task_id"] == "plan" and "rotate" in recorded[0]["exception"].lower()
    assert wait_for(lambda: smtp.messages[before:], what="e-mail")

