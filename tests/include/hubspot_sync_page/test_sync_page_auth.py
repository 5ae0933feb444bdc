"""The page inside Airflow's real API server app (``airflow.api_fastapi.app.create_app``), with the plugin
loaded from a plugins folder by Airflow's plugin manager and the Simple auth manager: no mocks.

Airflow's app needs its metadata database (the auth dependency looks up the DAG's team), so the
test migrates the session's SQLite metadata database first (about a second)."""

from __future__ import annotations

import shutil

import pytest
from sync_page_support import REPO

from hubspot_sync_page import NAV_NAME, NAV_ROUTE, URL_PREFIX

PLUGIN_FILE = REPO / "plugins" / "hubspot_sync_page_plugin.py"
PAGE = f"{URL_PREFIX}/"
HTML = {"accept": "text/html,application/xhtml+xml"}


def _clear_plugin_caches() -> None:
    from airflow import plugins_manager

    for name in ("_get_plugins", "_get_ui_plugins", "get_flask_plugins", "get_fastapi_plugins",
                 "_get_extra_operators_links_plugins", "get_timetables_plugins"):
        getattr(plugins_manager, name).cache_clear()


@pytest.fixture(scope="module")
def airflow_app(tmp_path_factory):
    """``airflow_app(all_admins=…)``: Airflow's API server app with only this plugin in its plugins folder."""
    from airflow import settings
    from airflow.utils import db

    plugins = tmp_path_factory.mktemp("plugins")
    shutil.copy(PLUGIN_FILE, plugins / PLUGIN_FILE.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                  "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "sync-page-test-" * 5)  # 75 bytes: no short-HMAC-key warning
        mp.delenv("AIRFLOW__API__BASE_URL", raising=False)
        mp.delenv("AIRFLOW_CONN_FINANCE_DB", raising=False)  # auth is the point here: the page says "no sync yet"
        mp.setattr(settings, "PLUGINS_FOLDER", str(plugins))
        db.initdb()
        _clear_plugin_caches()

        def make(all_admins: bool):
            from fastapi.testclient import TestClient

            from airflow.api_fastapi.app import create_app

            mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", str(all_admins))
            return TestClient(create_app())

        yield make
        _clear_plugin_caches()  # later tests load the configured plugins folder again


def admin_token() -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


def test_without_a_token_the_page_is_refused_when_auth_is_on(airflow_app):
    client = airflow_app(all_admins=False)
    page = client.get(PAGE, headers=HTML)
    assert page.status_code == 401
    assert "Sign in to Airflow" in page.text and 'href="/auth/login?next=' in page.text
    assert "No sync has run yet" not in page.text
    for path in (f"{URL_PREFIX}/api/summary", f"{URL_PREFIX}/rejects/1"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json() == {"detail": "Not authenticated"}, path


def test_a_forged_token_is_refused(airflow_app):
    client = airflow_app(all_admins=False)
    client.cookies.set("_token", "not-a-jwt")
    assert client.get(f"{URL_PREFIX}/api/summary").status_code == 403
    assert client.get(f"{URL_PREFIX}/api/summary", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403


def test_the_ui_session_cookie_or_a_bearer_token_opens_the_page(airflow_app):
    client = airflow_app(all_admins=False)
    token = admin_token()
    by_header = client.get(PAGE, headers={"Authorization": f"Bearer {token}"})
    assert by_header.status_code == 200 and "No sync has run yet — trigger hubspot_to_finance" in by_header.text
    client.cookies.set("_token", token)  # what the UI's sign-in leaves in the browser, sent by the iframe too
    by_cookie = client.get(f"{URL_PREFIX}/api/summary")
    assert by_cookie.status_code == 200 and by_cookie.json()["state"] == "no_sync_yet"


def test_all_admins_mode_needs_no_token(airflow_app):
    client = airflow_app(all_admins=True)
    response = client.get(PAGE)
    assert response.status_code == 200 and "No sync has run yet" in response.text


def test_the_plugin_mounts_the_app_and_adds_a_nav_entry(airflow_app):
    client = airflow_app(all_admins=False)
    plugins = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {admin_token()}"}).json()["plugins"]
    [plugin] = [p for p in plugins if p["name"] == "hubspot_sync_page"]
    assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [(URL_PREFIX, NAV_NAME)]
    [view] = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["destination"], view["nav_top_level"]) == \
           (NAV_NAME, f"{NAV_ROUTE}/", NAV_ROUTE, "nav", True)
