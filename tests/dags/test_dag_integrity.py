"""Every DAG in dags/ imports cleanly, without deprecation warnings, and is shaped as documented."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(DAGS))
    return bag, caught


def test_no_import_errors(dagbag):
    bag, _ = dagbag
    assert bag.import_errors == {}
    assert "hubspot_to_finance" in bag.dag_ids


def test_dag_files_import_without_deprecation_warnings():
    # A fresh interpreter, so warnings already issued by the suite do not hide ours.
    code = (
        "import warnings, runpy, sys\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "warnings.simplefilter('error', PendingDeprecationWarning)\n"
        "for f in sys.argv[1:]:\n"
        "    runpy.run_path(f)\n"
    )
    files = [str(p) for p in DAGS.glob("*.py")]
    result = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_shape(dagbag):
    from airflow.sdk import CronDataIntervalTimetable

    bag, _ = dagbag
    dag = bag.dags["hubspot_to_finance"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.timetable.expression == "0 2 * * *" and str(dag.timetable.timezone) == "Europe/Oslo"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert set(dag.params.keys()) == {"start", "end", "objects", "full_refresh", "dry_run", "reconcile"}
    assert set(dag.task_ids) == {
        "plan", "extract_reference", "extract_contacts", "extract_deals", "extract_companies",
        "transform_contacts", "transform_deals", "transform_companies", "load",
    }
    assert dag.doc_md and all(task.doc_md for task in dag.tasks)
    load = dag.get_task("load")
    assert {t.task_id for t in load.upstream_list} >= {"transform_contacts", "transform_deals", "transform_companies"}
    for name in ("contacts", "deals", "companies"):
        transform = dag.get_task(f"transform_{name}")
        assert {t.task_id for t in transform.upstream_list} >= {f"extract_{name}"}
        assert transform.multiple_outputs is False
    for task in dag.tasks:
        assert task.retries >= 1
