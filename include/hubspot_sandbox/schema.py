"""Static portal metadata: object types, property definitions, deal pipelines, owners, account.

Kept apart from the record store so the shape of the portal can be read in one place and so
``GET …/properties`` and ``GET …/pipelines`` never touch the (possibly huge) record arrays.
"""

from __future__ import annotations

OBJECT_TYPES = ("contacts", "companies", "deals")
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal"}

TYPE_ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "deals": "deals", "deal": "deals", "0-3": "deals",
}

OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}

# The last-modified property HubSpot maintains per object type (see the API doc).
LASTMOD_PROPERTY = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate", "deals": "hs_lastmodifieddate"}

# Returned on every record regardless of the requested property list.
ALWAYS_PROPERTIES = {t: ("hs_object_id", "createdate", LASTMOD_PROPERTY[t]) for t in OBJECT_TYPES}

# What HubSpot returns when a caller asks for no properties at all.
DEFAULT_PROPERTIES = {
    "contacts": ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
              "hs_lastmodifieddate", "hs_object_id"),
}

# Read scopes per object type; any one listed scope suffices.
OBJECT_SCOPES = {t: (f"crm.objects.{t}.read",) for t in OBJECT_TYPES}
SCHEMA_SCOPES = {t: (f"crm.schemas.{t}.read", f"crm.objects.{t}.read") for t in OBJECT_TYPES}
OWNER_SCOPES = ("crm.objects.owners.read",)
ALL_READ_SCOPES = (
    "crm.objects.contacts.read", "crm.objects.deals.read", "crm.objects.companies.read",
    "crm.objects.owners.read", "crm.schemas.contacts.read", "crm.schemas.deals.read",
    "crm.schemas.companies.read", "settings.currencies.read",
)

# Association type ids (HUBSPOT_DEFINED): (from, to) -> (unlabeled id, primary id or None).
ASSOCIATION_TYPES = {
    ("deals", "contacts"): (3, None),
    ("contacts", "deals"): (4, None),
    ("deals", "companies"): (341, 5),
    ("companies", "deals"): (342, 6),
    ("contacts", "companies"): (279, 1),
    ("companies", "contacts"): (280, 2),
}
# Edges are stored once, in this direction; the reverse is derived.
CANONICAL_PAIRS = (("deals", "contacts"), ("deals", "companies"), ("contacts", "companies"))

OWNERS = (
    ("51234501", "Kari", "Nordmann", "kari.nordmann@regnskapskontoret.no"),
    ("51234502", "Ola", "Hansen", "ola.hansen@regnskapskontoret.no"),
    ("51234503", "Åse", "Bråten", "ase.braten@regnskapskontoret.no"),
    ("51234504", "Øystein", "Løken", "oystein.loken@regnskapskontoret.no"),
    ("51234505", "Siri", "Sæther", "siri.saether@regnskapskontoret.no"),
    ("51234506", "Håkon", "Dahl", "hakon.dahl@regnskapskontoret.no"),
    ("51234507", "Ingrid", "Ødegård", "ingrid.odegard@regnskapskontoret.no"),
)
OWNER_IDS = tuple(o[0] for o in OWNERS)

DEFAULT_PIPELINE = "default"
CUSTOM_PIPELINE = "75482910"
ARCHIVED_STAGE = "75482915"

# (id, label, isClosed, probability, archived)
PIPELINES = (
    (DEFAULT_PIPELINE, "Salgspipeline", (
        ("appointmentscheduled", "Møte avtalt", "false", "0.2", False),
        ("qualifiedtobuy", "Kvalifisert", "false", "0.4", False),
        ("presentationscheduled", "Presentasjon avtalt", "false", "0.6", False),
        ("decisionmakerboughtin", "Beslutningstaker med", "false", "0.8", False),
        ("contractsent", "Kontrakt sendt", "false", "0.9", False),
        ("closedwon", "Vunnet", "true", "1.0", False),
        ("closedlost", "Tapt", "true", "0.0", False),
    )),
    (CUSTOM_PIPELINE, "Årsoppgjør og rådgivning", (
        ("75482911", "Forespørsel", "false", "0.1", False),
        ("75482912", "Tilbud sendt", "false", "0.5", False),
        ("75482913", "Oppdrag bekreftet", "true", "1.0", False),
        ("75482914", "Avslått", "true", "0.0", False),
        (ARCHIVED_STAGE, "Gammel: venter på bilag", "false", "0.7", True),
        ("75482916", "Fakturert", "true", "1.0", False),
    )),
)
STAGES = {pid: stages for pid, _label, stages in PIPELINES}
STAGE_INFO = {s[0]: (pid, s) for pid, _l, stages in PIPELINES for s in stages}

ACCOUNT = {
    "portalId": 24681357,
    "accountType": "STANDARD",
    "timeZone": "Europe/Oslo",
    "companyCurrency": "NOK",
    "additionalCurrencies": ["EUR", "SEK"],
    "utcOffset": "+01:00",
    "utcOffsetMilliseconds": 3600000,
    "uiDomain": "app-eu1.hubspot.com",
    "dataHostingLocation": "eu1",
}
# Exchange rates used for the calculated amount_in_home_currency.
EXCHANGE_RATES = {"NOK": 1.0, "EUR": 11.72, "SEK": 1.01}

LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
             "customer", "evangelist", "other")
INDUSTRIES = ("ACCOUNTING", "CONSTRUCTION", "RETAIL", "REAL_ESTATE", "RESTAURANTS", "FISHERY",
              "INFORMATION_TECHNOLOGY_AND_SERVICES", "HEALTH_WELLNESS_AND_FITNESS", "TRANSPORTATION_TRUCKING_RAILROAD")
DEALTYPES = ("newbusiness", "existingbusiness")

_FIELD_TYPES = {
    "string": "text", "number": "number", "datetime": "date", "date": "date",
    "enumeration": "select", "bool": "booleancheckbox", "phone_number": "phonenumber",
}


def _p(name, label, type_, *, options=(), hubspot=True, calculated=False, field_type=None, group=None):
    return {
        "name": name, "label": label, "type": type_, "fieldType": field_type or _FIELD_TYPES[type_],
        "description": "", "groupName": group or ("custom_properties" if not hubspot else "information"),
        "options": [{"label": lbl, "value": val, "displayOrder": i, "hidden": False} for i, (lbl, val) in enumerate(options)],
        "displayOrder": -1, "calculated": calculated, "externalOptions": False, "hasUniqueValue": False,
        "hidden": False, "hubspotDefined": hubspot, "formField": not calculated,
        "modificationMetadata": {"archivable": not hubspot, "readOnlyDefinition": hubspot, "readOnlyValue": calculated},
        "createdAt": "2019-01-01T00:00:00Z", "updatedAt": "2024-05-02T08:00:00Z", "archived": False,
    }


def _opts(values):
    return [(v, v) for v in values]


def property_definitions(otype: str, extra: int = 0) -> list[dict]:
    """All property definitions of ``otype`` including ``extra`` numbered custom properties."""
    common = [
        _p("hs_object_id", "Record ID", "number", calculated=False),
        _p("createdate", "Create Date", "datetime"),
        _p("hs_lastmodifieddate", "Last Modified Date", "datetime", calculated=True),
        _p("hubspot_owner_id", "Owner", "enumeration", options=[(f"{o[1]} {o[2]}", o[0]) for o in OWNERS]),
        _p("hs_merged_object_ids", "Merged record IDs", "enumeration", calculated=True, field_type="checkbox"),
    ]
    if otype == "contacts":
        props = common + [
            _p("lastmodifieddate", "Last Modified Date", "datetime", calculated=True),
            _p("firstname", "First Name", "string"), _p("lastname", "Last Name", "string"),
            _p("email", "Email", "string"), _p("phone", "Phone Number", "phone_number"),
            _p("mobilephone", "Mobile Phone Number", "phone_number"),
            _p("company", "Company Name", "string"), _p("jobtitle", "Job Title", "string"),
            _p("address", "Street Address", "string"), _p("zip", "Postal Code", "string"),
            _p("city", "City", "string"), _p("country", "Country/Region", "string"),
            _p("lifecyclestage", "Lifecycle Stage", "enumeration", options=_opts(LIFECYCLE), field_type="radio"),
            _p("hs_email_optout", "Unsubscribed from all email", "bool"),
            _p("customer_number", "Kundenummer", "string", hubspot=False),
            _p("invoice_email", "Faktura-e-post", "string", hubspot=False),
        ]
    elif otype == "companies":
        props = common + [
            _p("name", "Company name", "string"), _p("domain", "Company Domain Name", "string"),
            _p("phone", "Phone Number", "phone_number"), _p("address", "Street Address", "string"),
            _p("zip", "Postal Code", "string"), _p("city", "City", "string"),
            _p("country", "Country/Region", "string"),
            _p("industry", "Industry", "enumeration", options=_opts(INDUSTRIES)),
            _p("numberofemployees", "Number of Employees", "number"),
            _p("annualrevenue", "Annual Revenue", "number"),
            _p("org_number", "Organisasjonsnummer", "string", hubspot=False),
            _p("customer_number", "Kundenummer", "string", hubspot=False),
            _p("invoice_email", "Faktura-e-post", "string", hubspot=False),
        ]
    else:
        stage_opts = [(s[1], s[0]) for _pid, _l, stages in PIPELINES for s in stages]
        props = common + [
            _p("dealname", "Deal Name", "string"), _p("amount", "Amount", "number"),
            _p("deal_currency_code", "Currency", "enumeration", options=_opts(("NOK", "EUR", "SEK"))),
            _p("amount_in_home_currency", "Amount in company currency", "number", calculated=True),
            _p("closedate", "Close Date", "datetime"),
            _p("pipeline", "Pipeline", "enumeration", options=[(p[1], p[0]) for p in PIPELINES]),
            _p("dealstage", "Deal Stage", "enumeration", options=stage_opts, field_type="radio"),
            _p("dealtype", "Deal Type", "enumeration", options=_opts(DEALTYPES), field_type="radio"),
            _p("hs_is_closed_won", "Is Closed Won", "bool", calculated=True),
            _p("description", "Deal Description", "string", field_type="textarea"),
            _p("invoice_reference", "Fakturareferanse", "string", hubspot=False),
            _p("engagement_type", "Oppdragstype", "enumeration", hubspot=False,
               options=_opts(("regnskap", "lonn", "arsoppgjor", "radgivning"))),
            _p("billing_start_date", "Fakturering fra", "date", hubspot=False),
        ]
    for i in range(1, extra + 1):
        props.append(_p(extra_property_name(i), f"Egendefinert felt {i}", "string", hubspot=False))
    for n, p in enumerate(props):
        p["displayOrder"] = n
    return props


def extra_property_name(i: int) -> str:
    return f"egendefinert_felt_{i:03d}"


def pipelines_payload() -> list[dict]:
    out = []
    for order, (pid, label, stages) in enumerate(PIPELINES):
        out.append({
            "id": pid, "label": label, "displayOrder": order, "archived": False,
            "createdAt": "2019-01-01T00:00:00Z", "updatedAt": "2024-05-02T08:00:00Z",
            "stages": [{
                "id": sid, "label": slabel, "displayOrder": i, "archived": archived,
                "metadata": {"isClosed": closed, "probability": prob},
                "createdAt": "2019-01-01T00:00:00Z",
                "updatedAt": "2023-01-10T09:00:00Z" if archived else "2019-01-01T00:00:00Z",
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
            } for i, (sid, slabel, closed, prob, archived) in enumerate(stages)],
        })
    return out


def owners_payload() -> list[dict]:
    return [{"id": oid, "email": email, "firstName": fn, "lastName": ln, "userId": int(oid) - 51000000,
             "createdAt": "2019-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z", "archived": False}
            for oid, fn, ln, email in OWNERS]
