"""Asset identities, the events a load publishes, and the lineage it reports."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from hubspot_finance import assets

DAGS = Path(__file__).resolve().parents[3] / "dags"


def summary(**objects) -> dict:
    return {"run_id": "r", "mode": "incremental", "objects": objects}


def test_uris_keep_the_form_the_readme_gives():
    asset = assets.table_asset("finance_db", "contracts")
    assert asset.uri == "finance://finance_db/contracts"  # no trailing slash added by Airflow
    assert assets.hubspot_object_asset("hubspot_default", "deals").uri == "hubspot://hubspot_default/deals"


def test_only_loaded_tables_get_an_event_and_a_dry_run_none():
    deals_only = summary(deals={"table": "contracts", "inserted": 2, "updated": 1, "unchanged": 0, "rejected": 0, "deleted": 0})
    assert set(assets.loaded_table_extras(deals_only)) == {"contracts"}
    assert assets.loaded_table_extras({**deals_only, "dry_run": True}) == {}
    assert assets.loaded_table_extras(summary()) == {}


@pytest.fixture()
def lineage_reader(monkeypatch):
    """A registered hook-lineage reader (what the OpenLineage provider installs): the collector is live."""
    from airflow.sdk import plugins_manager
    from airflow.sdk.lineage import get_hook_lineage_collector

    monkeypatch.setattr(plugins_manager, "get_hook_lineage_readers_plugins", lambda: [object()])
    get_hook_lineage_collector.cache_clear()  # a singleton: built anew with the reader in place
    yield get_hook_lineage_collector()
    get_hook_lineage_collector.cache_clear()


def test_lineage_names_the_portal_objects_read_and_the_tables_written(lineage_reader):
    from airflow.sdk import BaseHook

    assets.report_read(BaseHook(), 24681357, "deals")
    built = []
    assets.report_written(lambda: built.append(1) or BaseHook(), "finance_db", ["contracts"])
    collected = lineage_reader.collected_assets
    assert [i.asset.uri for i in collected.inputs] == ["hubspot://portal-24681357/deals"]
    assert [o.asset.uri for o in collected.outputs] == ["finance://finance_db/contracts"]
    assert built == [1]


def test_no_lineage_reader_builds_no_hook():
    assets.report_written(lambda: pytest.fail("the finance hook must not be built"), "finance_db", ["contracts"])


def test_the_dag_declares_sources_and_publishes_through_the_alias():
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["hubspot_to_finance"]
    for name in ("contacts", "deals", "companies"):
        assert [a.uri for a in dag.get_task(f"extract_{name}").inlets] == [f"hubspot://hubspot_default/{name}"]
    assert [o.name for o in dag.get_task("load").outlets] == [assets.TABLES_ALIAS_NAME]
    assert all(task.multiple_outputs is False for task in dag.tasks), [t.task_id for t in dag.tasks if t.multiple_outputs]
    assert "Europe/Oslo" in dag.description
