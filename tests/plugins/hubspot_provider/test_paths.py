import pytest

from hubspot_provider.paths import OPERATIONS, api_path, validate_api_version


@pytest.mark.parametrize(
    ("operation", "params", "legacy", "dated"),
    [
        ("list", {"object_type": "contacts"}, "/crm/v3/objects/contacts", "/crm/objects/2026-09/contacts"),
        ("get", {"object_type": "deals", "object_id": "42"}, "/crm/v3/objects/deals/42", "/crm/objects/2026-09/deals/42"),
        ("search", {"object_type": "companies"}, "/crm/v3/objects/companies/search", "/crm/objects/2026-09/companies/search"),
        ("batch_read", {"object_type": "0-1"}, "/crm/v3/objects/0-1/batch/read", "/crm/objects/2026-09/0-1/batch/read"),
        ("properties", {"object_type": "deals"}, "/crm/v3/properties/deals", "/crm/properties/2026-09/deals"),
        ("pipelines", {"object_type": "deals"}, "/crm/v3/pipelines/deals", "/crm/pipelines/2026-09/deals"),
        (
            "associations",
            {"from_type": "deals", "to_type": "contacts"},
            "/crm/v4/associations/deals/contacts/batch/read",
            "/crm/associations/2026-09/deals/contacts/batch/read",
        ),
        ("account", {}, "/account-info/v3/details", "/account-info/2026-09/details"),
    ],
)
def test_every_operation_has_both_paths(operation, params, legacy, dated):
    assert api_path(operation, "v3", **params) == legacy
    assert api_path(operation, "2026-09", **params) == dated


def test_all_operations_covered_above():
    assert OPERATIONS == {"list", "get", "search", "batch_read", "properties", "pipelines", "associations", "account"}


def test_path_parameters_are_quoted():
    assert api_path("get", "v3", object_type="contacts", object_id="../x?y") == "/crm/v3/objects/contacts/..%2Fx%3Fy"


def test_versions():
    assert validate_api_version(None) == "2026-09"
    assert validate_api_version("v3") == "v3"
    assert validate_api_version("2027-03") == "2027-03"
    with pytest.raises(ValueError, match="Unsupported HubSpot API version 'v2'"):
        validate_api_version("v2")


def test_unknown_operation():
    with pytest.raises(ValueError, match="Unknown HubSpot operation"):
        api_path("delete", "v3")
