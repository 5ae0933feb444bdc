"""The installed distribution registers the ``hubspot`` connection type with Airflow."""

import warnings

from hubspot_provider.get_provider_info import get_provider_info


def test_providers_manager_lists_the_hook_and_form():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        runtime = ProvidersManagerTaskRuntime()  # what tasks use to find the hook
        hook = runtime.hooks["hubspot"]
        manager = ProvidersManager()  # what the API server uses to build the connection form
        assert "hubspot-airflow-provider" in manager.providers
        behaviour = manager.field_behaviours["hubspot"]
        widgets = manager.connection_form_widgets
    assert hook.hook_class_name == "hubspot_provider.hooks.hubspot.HubSpotHook"
    assert hook.connection_id_attribute_name == "hubspot_conn_id"
    assert hook.connection_testable is True
    assert behaviour["relabeling"]["password"] == "Private-app token or service key"
    assert behaviour["placeholders"]["host"] == "https://api.hubapi.com"
    assert {"schema", "login", "port"} <= set(behaviour["hidden_fields"])
    assert {"extra__hubspot__api_version", "extra__hubspot__search_requests_per_second"} <= set(widgets)


def test_provider_info_is_consistent_with_the_hook():
    from hubspot_provider.hooks.hubspot import HubSpotHook

    info = get_provider_info()
    (conn_type,) = info["connection-types"]
    assert info["package-name"] == "hubspot-airflow-provider"
    assert conn_type["connection-type"] == HubSpotHook.conn_type == "hubspot"
    assert conn_type["hook-name"] == HubSpotHook.hook_name
    assert HubSpotHook.default_conn_name == "hubspot_default"
    for field in conn_type["conn-fields"].values():
        assert field["label"] and field["schema"]["type"]


def test_airflow_cli_lists_the_hook():
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(airflow), "providers", "hooks"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "hubspot_provider.hooks.hubspot.HubSpotHook" in out.stdout


def test_airflow_does_not_load_the_provider_source_as_plugins():
    """Airflow imports every .py under plugins/ by file name; the provider's files must be ignored."""
    import warnings
    from pathlib import Path

    from airflow._shared.module_loading import find_path_from_directory

    plugins = Path(__file__).resolve().parents[3] / "plugins"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        files = [f for f in find_path_from_directory(str(plugins), ".airflowignore", "glob") if f.endswith(".py")]
    # Only the thin plugin files themselves.
    assert sorted(Path(f).name for f in files) == ["hubspot_sync_page_plugin.py", "hubspot_ui.py"]
