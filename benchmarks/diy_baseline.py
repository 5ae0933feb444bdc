"""The do-it-yourself baseline: what an office would write by hand.

HubSpot's official Python client (``hubspot-api-client``) lists all contacts and deals with
``get_all`` (retrying 429/5xx with urllib3's backoff, as HubSpot's docs suggest), then
``DataFrame.to_sql`` writes them. Run against the same sandbox portal and database as our sync.
"""

from __future__ import annotations

import time
from typing import Any

CONTACT_PROPERTIES = ["email", "firstname", "lastname", "phone", "company", "address", "zip", "city", "country",
                      "lifecyclestage", "hubspot_owner_id"]
DEAL_PROPERTIES = ["dealname", "amount", "deal_currency_code", "pipeline", "dealstage", "closedate", "hubspot_owner_id"]


def run(url: str, token: str, target: str, control: Any) -> dict[str, Any]:
    import pandas as pd
    from hubspot import HubSpot
    from sqlalchemy import create_engine
    from urllib3.util.retry import Retry

    retry = Retry(total=12, backoff_factor=1, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=None, respect_retry_after_header=True)
    client = HubSpot(access_token=token, host=url, retry=retry)
    engine = create_engine(target.replace("postgresql://", "postgresql+psycopg://") if target.startswith("postgresql")
                           else f"sqlite:///{target}")
    control.reset_stats()
    started = time.perf_counter()
    contacts = client.crm.contacts.get_all(properties=CONTACT_PROPERTIES)
    deals = client.crm.deals.get_all(properties=DEAL_PROPERTIES)
    extracted = time.perf_counter()
    frames = {
        "diy_contacts": pd.DataFrame([{"id": c.id, **c.properties, "updated_at": c.updated_at} for c in contacts]),
        "diy_deals": pd.DataFrame([{"id": d.id, **d.properties, "updated_at": d.updated_at} for d in deals]),
    }
    for name, frame in frames.items():
        frame.to_sql(name, engine, if_exists="replace", index=False, schema="bench_diy" if target.startswith("postgresql") else None)
    finished = time.perf_counter()
    stats = control.stats()
    engine.dispose()
    return {
        "records": len(contacts) + len(deals),
        "seconds": finished - started,
        "extract_seconds": extracted - started,
        "load_seconds": finished - extracted,
        "calls": stats.get("total"),
        "rate_limited": sum((stats.get("rate_limited") or {}).values()),
    }
