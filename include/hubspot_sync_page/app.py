"""The FastAPI app behind the "HubSpot sync" page: one HTML page, the same data as JSON, and a stored
rejected record, all read-only and behind Airflow's own authentication.

Routes (relative to where the plugin mounts the app, ``/hubspot-sync``):

- ``/``              the page (server-rendered HTML, inline CSS and SVG)
- ``/api/summary``   the same :class:`~hubspot_sync_page.dashboard.Dashboard` as JSON
- ``/rejects/{id}``  one ``rejected_records`` row with its raw HubSpot record, as JSON

Authentication: every route depends on Airflow's ``requires_access_dag("GET", RUN)`` for
``hubspot_to_finance`` — the caller must be signed in (a JWT as ``Authorization: Bearer …`` or the
UI's ``_token`` cookie) and allowed to read that DAG's runs. Unauthenticated: 401; not allowed: 403.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hubspot_finance.config import ConfigError, SyncConfig
from hubspot_sync_page import page
from hubspot_sync_page.dashboard import Dashboard, NoRunsYet, build_dashboard
from hubspot_sync_page.finance_db import (FinanceDbUnavailable, NoSyncYet, PageDataError, finance_password, mask,
                                          open_finance_db, safe_message)
from hubspot_sync_page.freshness import ScheduleError
from hubspot_sync_page.links import DAG_ID, AirflowLinks, airflow_base_url
from hubspot_sync_page.queries import FinanceReader, MissingTables

log = logging.getLogger(__name__)

NO_SYNC_HEADLINE = f"No sync has run yet — trigger {DAG_ID}."
Clock = Callable[[], datetime]


def airflow_auth() -> list[Any]:
    """Airflow's own dependency: signed in and allowed to read ``hubspot_to_finance``'s runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))]


class PageState(Exception):
    """Why the page shows a notice instead of data: ``status`` is the HTTP status, the message is safe to show."""

    def __init__(self, status: int, state: str, headline: str, detail: str):
        super().__init__(detail)
        self.status, self.state, self.headline, self.detail = status, state, headline, detail


def _links(base_url: str | None) -> AirflowLinks:
    return AirflowLinks(airflow_base_url() if base_url is None else base_url)


def _load(clock: Clock, links: AirflowLinks) -> Dashboard:
    """The dashboard, or :class:`PageState` saying why there is none (never a stack trace)."""
    try:
        cfg = SyncConfig.from_env()
    except ConfigError as err:
        raise PageState(503, "invalid_setting", "A HUBSPOT_SYNC_* setting is invalid.", str(err)) from None
    try:
        with open_finance_db(cfg) as conn:
            reader = FinanceReader(conn, cfg.schema)
            return build_dashboard(reader, cfg, clock(), links)
    except (NoSyncYet, MissingTables, NoRunsYet) as err:
        raise PageState(200, "no_sync_yet", NO_SYNC_HEADLINE, str(err)) from None
    except FinanceDbUnavailable as err:
        raise PageState(503, "finance_db_unavailable", "The finance database cannot be read.", str(err)) from None
    except ScheduleError as err:
        raise PageState(503, "invalid_setting", "A HUBSPOT_SYNC_* setting is invalid.", str(err)) from None
    except Exception as err:  # a query failed: say which, without a trace or the password
        log.exception("HubSpot sync page: reading the finance tables failed")
        raise PageState(503, "query_failed", "Reading the finance tables failed.", safe_message(err, cfg)) from None


def create_app(*, dependencies: Sequence[Any] | None = None, clock: Clock | None = None,
               base_url: str | None = None) -> FastAPI:
    """The page's app. ``dependencies`` default to Airflow's authentication (:func:`airflow_auth`);
    ``clock`` and ``base_url`` (default ``[api] base_url``) are for tests."""
    clock = clock or (lambda: datetime.now(timezone.utc))
    app = FastAPI(title="HubSpot sync", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=list(airflow_auth() if dependencies is None else dependencies))

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        """401/403 from the auth dependency: a short page with a sign-in link for browsers, JSON otherwise."""
        if exc.status_code in (401, 403) and "text/html" in request.headers.get("accept", ""):
            headline = "Sign in to Airflow to see this page." if exc.status_code == 401 else \
                f"You may not read {DAG_ID}'s runs."
            return HTMLResponse(page.render_denied(headline, _login_url(request)), status_code=exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.get("/", response_class=HTMLResponse)
    def dashboard_page() -> Response:
        links = _links(base_url)
        try:
            return _html(page.render_dashboard(_load(clock, links)))
        except PageState as state:
            return _html(page.render_empty(state.headline, state.detail, links.dag()), state.status)

    @app.get("/api/summary")
    def dashboard_json() -> Response:
        try:
            return _json({"state": "ok", **jsonable_encoder(_load(clock, _links(base_url)))})
        except PageState as state:
            return _json({"state": state.state, "message": f"{state.headline} {state.detail}"}, state.status)

    @app.get("/rejects/{reject_id}")
    def stored_reject(reject_id: int) -> Response:
        cfg = None
        try:
            cfg = SyncConfig.from_env()
            with open_finance_db(cfg) as conn:
                row = FinanceReader(conn, cfg.schema).raw_reject(reject_id)
        except (NoSyncYet, MissingTables) as err:
            return _json({"detail": str(err)}, 404)
        except (PageDataError, ConfigError) as err:
            return _json({"detail": str(err)}, 503)
        except Exception as err:
            log.exception("HubSpot sync page: reading rejected record %s failed", reject_id)
            return _json({"detail": safe_message(err, cfg) if cfg else type(err).__name__}, 503)
        if row is None:
            return _json({"detail": f"no rejected record {reject_id}"}, 404)
        return _json(jsonable_encoder(row))

    return app


def _masked(text: str) -> str:
    """Whatever leaves the page, with finance_db's password masked (a stored error could quote it)."""
    try:
        return mask(text, finance_password(SyncConfig.from_env()))
    except ConfigError:
        return text


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_masked(text), status_code=status)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(_masked(json.dumps(body, ensure_ascii=False)), status_code=status, media_type="application/json")


def _login_url(request: Request) -> str | None:
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return get_auth_manager().get_url_login(next_url=str(request.url))
    except Exception:
        return None
