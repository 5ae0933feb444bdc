"""The Airflow UI as the people who run the sync see it, in a real browser (Debian's chromium via Playwright).

One `make airflow` (the devserver, exactly as a person starts it) for the module: its start-up
messages and time, the connection Test button for connections made four ways, the trigger form, the
first manual run on a fresh install, a failed run's log, the run summary, the time zone, the deadline
alert under the real triggerer (a deadline of one minute: sent for a run still running, silent for one
that failed) and the "HubSpot sync" page after a change made with `make sandbox-edit`. The screenshots the README shows
are taken here (into docs/screenshots with HUBSPOT_SYNC_SCREENSHOTS=docs, else var/screenshots).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from e2e_support import AirflowApi

from hubspot_devtools.local import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]  # the first test also waits for make airflow

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "hubspot_to_finance"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "docs" / "screenshots" if os.environ.get("HUBSPOT_SYNC_SCREENSHOTS") == "docs" else REPO / "var" / "screenshots"
PORT_TAKEN = "used by another program"  # make airflow's words for a port it cannot have
START_LIMIT_S = 700  # make airflow gives up by itself after its 600 s readiness limit plus set-up



def wait_for(predicate, timeout: float = 30, what: str = "condition", every: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return result


class MakeAirflow(AirflowApi):
    """``python -m hubspot_devtools.devserver`` (what `make airflow` runs) in a work dir of its own."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.out = workdir / "make-airflow.out"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HUBSPOT_SYNC_"))}
        self.token = f"pat-eu1-{uuid.uuid4()}"
        self.env["HUBSPOT_SANDBOX_TOKEN"] = self.token
        self.env["HUBSPOT_SYNC_DEADLINE_MINUTES"] = "1"
        self.env.update({"PYTHONUNBUFFERED": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"})
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port, self.sandbox_port = free_port(), free_port()
        AirflowApi.__init__(self, f"http://localhost:{self.port}")
        # A connection from an environment variable, next to the ones make airflow stores: same sandbox.
        self.env["AIRFLOW_CONN_HUBSPOT_ENV"] = json.dumps(
            {"conn_type": "hubspot", "host": f"http://127.0.0.1:{self.sandbox_port}", "password": self.token})
        self.env.update({"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                         "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())})

    def start(self) -> None:
        """Start make airflow; once more on fresh ports if the other test stream took one of ours meanwhile."""
        self._start()
        if self.proc.poll() is not None and PORT_TAKEN in self.output():
            print(f"make airflow lost a port to another test process; starting again:\n{self.diagnostics()}")
            self._out.close()
            self._pick_ports()
            self._start()
        assert self.proc.poll() is None, self.diagnostics()
        self.ready_seconds = time.monotonic() - self.started
        self.sandbox_url = re.search(r"HubSpot sandbox: (\S+)", self.output()).group(1)
        self.airflow_env = {**self.env, "AIRFLOW_HOME": str(self.workdir / "home")}

    def _start(self) -> None:
        self._out = self.out.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hubspot_devtools.devserver", "--port", str(self.port),
             "--sandbox-port", str(self.sandbox_port), "--workdir", str(self.workdir)],
            env=self.env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            # Longer than make airflow's own readiness limit, so its own diagnosis is what a failure shows.
            wait_for(lambda: "Ready in" in self.output() or self.proc.poll() is not None, timeout=START_LIMIT_S,
                     what="make airflow")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.diagnostics()}") from None

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def diagnostics(self, lines: int = 60) -> str:
        """What make airflow printed, and the end of Airflow's own logs: why it is not ready."""
        parts = [f"--- make airflow ({time.monotonic() - self.started:.0f} s):\n{self.output()}"]
        for name in ("setup.log", "airflow.log"):
            path = self.workdir / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- last {len(tail)} lines of {name}:\n" + "\n".join(tail))
        load = os.getloadavg()
        parts.append(f"--- load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
        return "\n".join(parts)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)  # Ctrl-C, as a person stops it
            self.proc.wait(timeout=40)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._out.close()

    def runs(self) -> list[dict]:
        return self.get(f"/dags/{DAG_ID}/dagRuns", order_by="run_after")["dag_runs"]

    def run_url(self, run_id: str, task_id: str | None = None) -> str:
        url = f"{self.base}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}"
        return f"{url}/tasks/{task_id}" if task_id else url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("HUBSPOT_SYNC_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium); CI requires the browser tests")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def ui(tmp_path_factory, browser):
    af = MakeAirflow(tmp_path_factory.mktemp("make-airflow"))
    af.start()
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield af
    finally:
        af.stop()


@pytest.fixture()
def page(browser, ui):
    # A person in Norway, who picked nothing: the browser's own zone is what the UI shows.
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="Europe/Oslo")
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shot(page, name: str, **kwargs) -> None:
    page.screenshot(path=str(SHOTS / name), **kwargs)


def test_make_airflow_says_what_it_does_and_is_ready_in_time(ui):
    out = ui.output()
    steps = ["1. starting the HubSpot sandbox", "2. preparing Airflow's database", "3. starting Airflow", "Ready in",
             "Airflow UI:"]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions), out  # the URL comes after "ready", never before
    # Its start-up time is a figure to read, not a test: how long depends on what else the machine runs.
    print(f"make airflow was ready after {ui.ready_seconds:.0f} s (load average {os.getloadavg()[0]:.1f})")
    assert re.search(r"dag processor: healthy \(after \d+ s\)", out), out
    health = ui.http.get(f"{ui.api}/monitor/health", timeout=10).json()
    assert all(health[part]["status"] == "healthy" for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))
    # Sized to the machine, quiet on the terminal, no short-secret warning.
    assert f"{max(4, 2 * (os.cpu_count() or 1))} task slots" in out
    assert len(out.splitlines()) < 20, out
    airflow_log = (ui.workdir / "airflow.log").read_text(errors="replace")
    assert "jwt_secret" not in airflow_log.lower() or "too short" not in airflow_log.lower()


def test_trigger_form_and_the_first_manual_run_on_a_fresh_install(ui, page):
    assert ui.get(f"/dags/{DAG_ID}")["is_paused"] is True and ui.runs() == []
    page.goto(f"{ui.base}/dags/{DAG_ID}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    # One section: every field is usable at once.
    start, dry_run = dialog.locator("#element_start"), dialog.get_by_text("Dry run", exact=True)
    start.wait_for()
    assert start.is_visible() and dry_run.is_visible()
    text = dialog.inner_text()
    assert "Format 2026-11-01 or 2026-11-01T06:00 (Europe/Oslo" in text
    # Objects: a multi-select of the three objects, all chosen.
    chips = dialog.locator("#element_objects [aria-label^='Remove ']")
    assert [c.get_attribute("aria-label") for c in chips.all()] == ["Remove contacts", "Remove deals", "Remove companies"]
    # Booleans with a default carry no "required" mark (Objects, which needs one at least, does).
    def required(label: str) -> bool:
        return dialog.locator("label[data-part=label]").filter(has_text=label).first.get_attribute("data-required") is not None

    assert required("Objects")
    assert not any(required(label) for label in ("Full refresh", "Dry run", "Find permanent deletes", "Start (optional)"))
    week_ago = (datetime.now(ZoneInfo("Europe/Oslo")) - timedelta(days=7)).date().isoformat()
    start.fill(week_ago)
    shot(page, "trigger-form.png", full_page=True)
    dialog.get_by_role("button", name="Trigger").click()

    # "Unpause on trigger" was ticked: the run asked for is the only run, no scheduled one ahead of it.
    run = wait_for(lambda: ui.runs(), timeout=30, what="the triggered run")[0]
    ui.first_run = ui.wait_run(run["dag_run_id"])
    runs = ui.runs()
    assert [(r["run_type"], r["conf"].get("start")) for r in runs] == [("manual", week_ago)], runs
    assert ui.first_run["state"] == "success"
    summary = ui.get(ui.run_path(run['dag_run_id']) + "/taskInstances/load/xcomEntries/return_value")["value"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    # The sandbox has two weeks of people's edits: the last week is not empty.
    assert all(summary["objects"][o]["inserted"] > 0 for o in ("contacts", "deals", "companies")), summary["objects"]


def test_the_run_summary_is_one_table_at_the_top_of_the_load_log_and_one_xcom(ui, page):
    run_id = ui.first_run["dag_run_id"]
    xcoms = ui.get(ui.run_path(run_id) + "/taskInstances/load/xcomEntries")["xcom_entries"]
    assert [x["key"] for x in xcoms] == ["return_value"]
    page.goto(ui.run_url(run_id, "load"), wait_until="networkidle")
    header = page.get_by_text(f"HubSpot sync {run_id}: success, range run, loaded in one transaction")
    header.wait_for()
    assert header.count() == 1 and header.is_visible()  # printed once, outside any collapsed group
    table_head = page.get_by_text(re.compile(r"object\s+extracted\s+inserted\s+updated\s+unchanged"))
    assert table_head.is_visible()
    assert "Returned value was" not in page.content()
    header.scroll_into_view_if_needed()
    shot(page, "run-summary.png")


def test_a_failed_run_shows_the_cause_and_the_fix_first(ui, page):
    run_id = ui.failed_run_id = ui.trigger({"start": "1 nov"})["dag_run_id"]
    assert ui.wait_run(run_id)["state"] == "failed"
    page.goto(ui.run_url(run_id, "plan"), wait_until="networkidle")
    cause = page.get_by_text("Invalid trigger parameters: start='1 nov' is not a date")
    cause.wait_for()
    assert cause.is_visible()
    block = page.get_by_text(re.compile(r"HUBSPOT SYNC FAILED: task plan of run .* \(not retried"))
    assert block.is_visible()  # not inside the collapsed Post Execute group
    text = page.locator("body").inner_text()
    assert "fix:   trigger a new run with corrected parameters" in text and "try 1 of" not in text
    shot(page, "failed-run.png")


def test_a_run_still_running_at_its_deadline_is_held_here(ui):
    """HUBSPOT_SYNC_DEADLINE_MINUTES=1 in this Airflow. A person edits a deal, then a run is held
    "running" without a free task slot; the tests below run meanwhile, and the deadline test then looks
    for the alert (this one) and its absence (the run that failed above)."""
    import sqlite3

    # A deal the finance tables already hold (the first run read one week): its new amount is a change.
    with sqlite3.connect(ui.workdir / "finance.db") as con:
        ui.deal_id, = con.execute("SELECT hubspot_deal_id FROM contracts WHERE is_deleted = 0 AND amount IS NOT NULL "
                                  "ORDER BY hubspot_deal_id LIMIT 1").fetchone()
    edit = subprocess.run([sys.executable, "-m", "hubspot_devtools.sandbox_edit", "--url", ui.sandbox_url,
                           "set-amount", str(ui.deal_id), "125000.50"], capture_output=True, text=True, env=ui.env)
    assert edit.returncode == 0, edit.stdout + edit.stderr
    assert "125000.50" in edit.stdout
    ui.set_default_pool_slots(0)
    ui.held_run_id = ui.trigger({})["dag_run_id"]
    assert ui.get(ui.run_path(ui.held_run_id))["state"] in ("queued", "running")


def test_the_connection_test_button_is_green_for_connections_made_every_way(ui, page):
    token = (ui.workdir / "sandbox-token").read_text().strip()
    # By the CLI, as an operator scripts it ...
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "connections", "add", "hubspot_cli", "--conn-type",
                    "hubspot", "--conn-host", ui.sandbox_url, "--conn-password", token],
                   env=ui.airflow_env, check=True, capture_output=True)
    # ... and through the form.
    page.goto(f"{ui.base}/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[name=connection_id]").fill("hubspot_form")
    page.get_by_role("combobox").last.click()
    page.keyboard.type("HubSpot")
    page.keyboard.press("Enter")
    page.locator("input[name=host]").fill(ui.sandbox_url)
    page.locator("input[name=password]").fill(token)
    page.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text="hubspot_form").wait_for()

    expected = {"hubspot_default": "Connected to HubSpot portal", "finance_db": "Connection successfully tested",
                "hubspot_cli": "Connected to HubSpot portal", "hubspot_form": "Connected to HubSpot portal"}
    for conn_id, message in expected.items():
        page.goto(f"{ui.base}/connections", wait_until="networkidle")
        page.get_by_role("row").filter(has_text=conn_id).get_by_role("button", name="Test Connection").click()
        toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text="Test Connection")
        toast.first.wait_for()
        text = toast.first.inner_text()
        assert "Test Connection Successful" in text and message in text, (conn_id, text)
        if conn_id == "hubspot_default":
            assert "time zone Europe/Oslo, currency NOK" in text
            shot(page, "connection-test.png")
    assert token not in page.content()


def test_a_connection_from_an_environment_variable_tests_green_as_the_ui_asks(ui):
    # Airflow 3.3 does not list environment-variable connections, so there is no button to press;
    # the API server's test endpoint gets the very body the list page sends (port 0, masked password).
    body = {"connection_id": "hubspot_env", "conn_type": "hubspot", "host": ui.sandbox_url, "port": 0,
            "password": "***", "login": "", "schema": "", "extra": "{}"}
    r = ui.http.post(f"{ui.api}/connections/test", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["status"] is True, r.text
    assert r.json()["message"].startswith("Connected to HubSpot portal") and ui.token not in r.text


def test_the_dag_says_its_time_zone_and_schedule(ui, page):
    dag = ui.get(f"/dags/{DAG_ID}")
    assert "Europe/Oslo" in dag["description"]
    # The next nightly run is tonight's 02:00 in Oslo (unpausing did not run yesterday's interval).
    run_after = datetime.fromisoformat(dag["next_dagrun_run_after"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Oslo"))
    assert (run_after.hour, run_after.minute) == (2, 0)
    page.goto(f"{ui.base}/dags/{DAG_ID}/details", wait_until="networkidle")
    page.get_by_text("Europe/Oslo", exact=False).first.wait_for()
    assert page.get_by_text(dag["description"]).first.is_visible()


def test_the_deadline_alert_fires_for_the_running_run_and_stays_silent_for_the_failed_one(ui):
    log = ui.workdir / "airflow.log"
    try:
        wait_for(lambda: f"HUBSPOT SYNC LATE: run {ui.held_run_id}" in log.read_text(errors="replace"), timeout=150,
                 what="the late alert of the running run", every=1)
        assert ui.get(ui.run_path(ui.held_run_id))["state"] in ("queued", "running")
        # The failed run's deadline passed before: the triggerer ran its callback, which said nothing.
        text = log.read_text(errors="replace")
        assert f"run {ui.failed_run_id} already ended (failed)" in text
        assert f"HUBSPOT SYNC LATE: run {ui.failed_run_id}" not in text
    finally:
        ui.set_default_pool_slots(128)
    assert ui.wait_run(ui.held_run_id)["state"] == "success"


def test_the_sync_page_shows_what_arrived_after_a_change_made_like_a_person(ui, page):
    run_id, deal_id = ui.held_run_id, ui.deal_id  # the run held above, which read the edited deal
    page.goto(f"{ui.base}/dags", wait_until="networkidle")
    page.get_by_role("link", name=re.compile("HubSpot sync")).first.click()
    page.wait_for_url(re.compile(r"/plugin/hubspot-sync"))
    frame = page.frame_locator("iframe").first
    frame.get_by_text("contacts").first.wait_for()
    body = frame.locator("body").inner_text()
    for expected in ("contacts", "deals", "companies", run_id, str(deal_id), "125000.5"):
        assert expected in body, expected
    shot(page, "sync-page.png", full_page=True)
    # Each run links to its Airflow run page, opened in the UI itself.
    frame.get_by_role("link", name=run_id).first.click()
    page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/"))
