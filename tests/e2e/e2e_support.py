"""Helpers the end-to-end tests import (a uniquely named module, unlike conftest)."""

from __future__ import annotations

import json


def connection_env(sb, finance: dict, **extra) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": json.dumps({"conn_type": "hubspot", "host": sb.url, "password": sb.token}),
        "AIRFLOW_CONN_FINANCE_DB": json.dumps(finance),
        **extra,
    }


class AirflowApi:
    """The REST calls the end-to-end tests make of a running Airflow (all-admins mode: no token)."""

    dag_id = "hubspot_to_finance"

    def __init__(self, base: str):
        import requests

        self.base = base
        self.api = f"{base}/api/v2"
        self.http = requests.Session()

    def get(self, path: str, **params) -> dict:
        r = self.http.get(f"{self.api}{path}", params=params, timeout=30)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:500]}"
        return r.json()

    def run_path(self, run_id: str) -> str:
        from urllib.parse import quote

        return f"/dags/{self.dag_id}/dagRuns/{quote(run_id, safe='')}"

    def trigger(self, conf: dict) -> dict:
        """A manual run with the logical date cleared, as the trigger form can; returns the new run."""
        r = self.http.post(f"{self.api}/dags/{self.dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=30)
        assert r.status_code == 200, f"trigger: {r.status_code} {r.text[:1000]}"
        return r.json()

    def wait_run(self, run_id: str, timeout: float = 180) -> dict:
        import time

        deadline = time.monotonic() + timeout
        while True:
            run = self.get(self.run_path(run_id))
            if run["state"] in ("success", "failed"):
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['state']} after {timeout} s\n{self.diagnostics()}"
            time.sleep(1)

    def diagnostics(self) -> str:
        """What to show when a wait times out (a subclass adds its log's tail)."""
        return ""

    def task_instances(self, run_id: str) -> dict[str, dict]:
        return {ti["task_id"]: ti for ti in self.get(f"{self.run_path(run_id)}/taskInstances")["task_instances"]}

    def xcom(self, run_id: str, task_id: str):
        value = self.get(f"{self.run_path(run_id)}/taskInstances/{task_id}/xcomEntries/return_value")["value"]
        return json.loads(value) if isinstance(value, str) else value

    def set_default_pool_slots(self, slots: int) -> None:
        r = self.http.patch(f"{self.api}/pools/default_pool", params={"update_mask": "slots"},
                            json={"name": "default_pool", "slots": slots}, timeout=30)
        assert r.status_code == 200, r.text
