"""HubSpotHook: read-only HubSpot CRM access for Airflow, driven by a ``hubspot`` connection.

HTTP concerns only: the base URL and API-version paths, the Bearer header, client-side rate
limiting, retries, typed errors and streaming page primitives. It knows nothing of Parquet, the
finance tables or watermarks: the pipeline package builds on these primitives.

Why not ``HttpHook.run``: it sends every connection extra as a header, sends no auth for a
password without a login, and logs whole error bodies. We keep its connection handling and
``conn_*`` attributes, and own the session and the request path.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook

from hubspot_provider.errors import (
    HubSpotAuthError,
    HubSpotBadRequestError,
    HubSpotConfigError,
    HubSpotDailyLimitError,
    HubSpotError,
    HubSpotForbiddenError,
    HubSpotNotFoundError,
    HubSpotRateLimitError,
    HubSpotRedirectError,
    HubSpotRetriesExhaustedError,
    HubSpotScopeError,
    HubSpotSearchCapError,
    HubSpotServerError,
    HubSpotTransportError,
    HubSpotUriTooLongError,
)
from hubspot_provider.paths import api_path, validate_api_version
from hubspot_provider.ratelimit import GeneralBudget, RateLimitHeaders, SharedWindowLimiter, SlidingWindowLimiter
from hubspot_provider.stats import CallStats

DEFAULT_BASE_URL = "https://api.hubapi.com"
SEARCH_RESULT_CAP = 10_000
LIST_PAGE_MAX = 100
SEARCH_PAGE_MAX = 200
BATCH_READ_MAX = 100
ASSOCIATIONS_BATCH_MAX = 1_000
RETRYABLE_STATUSES = frozenset({423, 477, 500, 502, 503, 504, 521, 523, 524})
SCOPE_KEYS = ("requiredGranularScopes", "requiredScopes", "missingScopes")


@dataclass(frozen=True)
class HubSpotSettings:
    """What the hook takes from the connection, validated once."""

    base_url: str
    token: str
    api_version: str
    requests_per_ten_seconds: int = 100
    budget_share: float = 0.9
    search_requests_per_second: float = 5.0
    max_retries: int = 6
    timeout: float = 60.0
    account_time_zone: str = "Europe/Oslo"
    shared_limits: bool = True
    shared_limits_dir: str = ""


@dataclass
class ListPage:
    results: list[dict[str, Any]]
    after: str | None  # cursor of the next page; None on the last page


@dataclass
class SearchPage:
    results: list[dict[str, Any]]
    total: int
    after: int | None  # offset of the next page; None when this was the last one


@dataclass
class BatchReadResult:
    results: list[dict[str, Any]]
    requested_ids: list[str]
    missing_ids: list[str] = field(default_factory=list)  # ids HubSpot reported as not found (207)


@dataclass
class AssociationPage:
    results: list[dict[str, Any]]  # HubSpot's results: {"from": {"id"}, "to": [...], "paging"?}
    missing_ids: list[str] = field(default_factory=list)  # every id HubSpot answered with an error
    empty_ids: list[str] = field(default_factory=list)  # ...of which: "no associations" (an empty set)
    failed_ids: list[str] = field(default_factory=list)  # ...of which: any other error (unknown, not empty)


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


_as_bool.__name__ = "bool"


def is_loopback_host(hostname: str | None) -> bool:
    if not hostname:
        return False
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def build_base_url(host: str | None, schema: str | None = None, port: int | None = None) -> str:
    """Base URL from the connection's host (a full URL or a host name); https unless loopback."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return DEFAULT_BASE_URL
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HubSpotConfigError(f"HubSpot host {host!r} is not an http(s) URL such as {DEFAULT_BASE_URL}.")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise HubSpotConfigError(
            f"Refusing plain http to {parts.hostname}: the token must travel over TLS. "
            "Use https (plain http is allowed only for a loopback sandbox such as 127.0.0.1)."
        )
    if parts.username or parts.password:
        raise HubSpotConfigError("Put the token in the connection's password field, not in the host URL.")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port or port:
        netloc = f"{netloc}:{parts.port or port}"
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def missing_scopes(body: dict[str, Any]) -> list[str]:
    """Collect scopes from every place HubSpot puts them: top-level ``context`` and ``errors[].context``."""
    contexts = [body.get("context")]
    contexts += [err.get("context") for err in body.get("errors") or [] if isinstance(err, dict)]
    scopes: list[str] = []
    for context in contexts:
        if not isinstance(context, dict):
            continue
        for key in SCOPE_KEYS:
            values = context.get(key) or []
            if isinstance(values, str):
                values = [values]
            scopes += [str(v) for v in values if str(v) not in scopes]
    return scopes


def _error_ids(body: dict[str, Any], *keys: str) -> list[str]:
    """Ids a partial (207) answer reports in ``errors[].context`` under the first of ``keys`` present."""
    ids: list[str] = []
    for error in body.get("errors") or []:
        context = (error or {}).get("context") or {}
        for key in keys:
            if context.get(key):
                ids += [str(i) for i in context[key]]
                break
    return ids


def _is_no_associations(error: dict[str, Any]) -> bool:
    """HubSpot answers an id without associations with an error (``NO_ASSOCIATIONS_FOUND``): an empty set."""
    sub = str(error.get("subCategory") or "").upper()
    message = str(error.get("message") or "").lower()
    return "NO_ASSOCIATIONS" in sub or ("no " in message and " is associated with " in message)


def _association_errors(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ids without associations, ids with any other per-id error) of a 207 association answer."""
    empty: list[str] = []
    failed: list[str] = []
    for error in body.get("errors") or []:
        error = error or {}
        context = error.get("context") or {}
        ids = next(([str(i) for i in context[k]] for k in ("fromObjectId", "fromObjectIds", "ids") if context.get(k)), [])
        (empty if _is_no_associations(error) else failed).extend(ids)
    return empty, failed


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class HubSpotHook(HttpHook):
    """Interact with the HubSpot CRM API with a private-app token or service key.

    :param hubspot_conn_id: a connection of type ``hubspot``; the password holds the token.
    :param budget_share: override the connection's share of the ten-secondly budget.
    :param budget_fraction: the fraction (0, 1] of the connection's budgets (general and search)
        this hook may spend, for hooks that run at the same time (e.g. extract tasks in parallel):
        fractions that add up to 1 keep them together under HubSpot's limits without coordinating.
    :param search_fraction: the same for the search budget (default: ``budget_fraction``).
    :param cold_start: hold the first search for one search window. Search answers carry no
        rate-limit headers, so a hook starting while others just searched cannot know the account's
        recent use. Default: on when the hook shares the search budget (``search_fraction < 1``).
    :param sleep: injectable for tests.
    """

    conn_name_attr = "hubspot_conn_id"
    default_conn_name = "hubspot_default"
    conn_type = "hubspot"
    hook_name = "HubSpot"
    default_host = DEFAULT_BASE_URL

    def __init__(
        self,
        hubspot_conn_id: str = default_conn_name,
        *,
        budget_share: float | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        budget_fraction: float = 1.0,
        search_fraction: float | None = None,
        cold_start: bool | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(method="GET", http_conn_id=hubspot_conn_id)
        self.hubspot_conn_id = hubspot_conn_id
        self._overrides = {"budget_share": budget_share, "max_retries": max_retries, "timeout": timeout}
        search_fraction = budget_fraction if search_fraction is None else search_fraction
        if not (0 < budget_fraction <= 1 and 0 < search_fraction <= 1):
            raise ValueError("budget_fraction and search_fraction must be in (0, 1]")
        self.budget_fraction = budget_fraction
        self.search_fraction = search_fraction
        self.cold_start = search_fraction < 1 if cold_start is None else cold_start
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self.stats = CallStats()
        self._account: dict[str, Any] | None = None

    # ---- configuration -------------------------------------------------------------------------

    @cached_property
    def settings(self) -> HubSpotSettings:
        conn = self.get_connection(self.hubspot_conn_id)
        token = (conn.password or "").strip()
        if not token:
            raise HubSpotConfigError(
                f"Connection '{self.hubspot_conn_id}' has no token: put the private-app token or service key "
                "in its password field."
            )
        self._mask(token)
        extra = conn.extra_dejson or {}

        def pick(name: str, cast: Callable[[Any], Any], default: Any) -> Any:
            value = self._overrides.get(name)
            if value is None:
                value = extra.get(name)
            if value is None or value == "":
                return default
            try:
                return cast(value)
            except (TypeError, ValueError):
                raise HubSpotConfigError(
                    f"Connection '{self.hubspot_conn_id}': extra field {name!r} must be a {cast.__name__}, got {value!r}."
                ) from None

        try:
            version = validate_api_version(extra.get("api_version"))
        except ValueError as err:
            raise HubSpotConfigError(f"Connection '{self.hubspot_conn_id}': {err}") from None
        settings = HubSpotSettings(
            base_url=build_base_url(conn.host, conn.schema, conn.port),
            token=token,
            api_version=version,
            requests_per_ten_seconds=pick("requests_per_ten_seconds", int, 100),
            budget_share=pick("budget_share", float, 0.9),
            search_requests_per_second=pick("search_requests_per_second", float, 5.0),
            max_retries=pick("max_retries", int, 6),
            timeout=pick("timeout", float, 60.0),
            account_time_zone=pick("account_time_zone", str, "Europe/Oslo"),
            shared_limits=pick("shared_limits", _as_bool, True),
            shared_limits_dir=pick(
                "shared_limits_dir", str, os.path.join(tempfile.gettempdir(), "hubspot-airflow-limits")
            ),
        )
        if not 0 < settings.budget_share <= 1:
            raise HubSpotConfigError(f"Connection '{self.hubspot_conn_id}': budget_share must be in (0, 1].")
        return settings

    @staticmethod
    def _mask(token: str) -> None:
        """Register the token with Airflow's log masker (connection passwords are masked already)."""
        try:
            from airflow.sdk.log import mask_secret
        except ImportError:  # pragma: no cover - older SDKs
            return
        mask_secret(token)

    @cached_property
    def general_budget(self) -> GeneralBudget:
        settings = self.settings
        if settings.shared_limits:
            # Every hook on this host with this token draws from one window: no fractions needed.
            return GeneralBudget(
                settings.requests_per_ten_seconds, 10.0, settings.budget_share,
                shared_path=self._shared_state_path("general"), sleep=self._sleep,
            )
        share = settings.budget_share * self.budget_fraction
        return GeneralBudget(settings.requests_per_ten_seconds, 10.0, share, pool_share=settings.budget_share, sleep=self._sleep)

    @cached_property
    def search_limiter(self) -> SlidingWindowLimiter | SharedWindowLimiter:
        shared = self.settings.shared_limits
        rate = self.settings.search_requests_per_second * (1.0 if shared else self.search_fraction)
        # n calls per n/rate seconds keeps fractional rates exact (0.5/s -> 1 per 2 s).
        capacity = max(1, int(rate))
        if shared:
            return SharedWindowLimiter(self._shared_state_path("search"), capacity, capacity / rate, sleep=self._sleep)
        limiter = SlidingWindowLimiter(capacity, capacity / rate, sleep=self._sleep)
        if self.cold_start:
            limiter.pause(limiter.interval + limiter.margin)
        return limiter

    def _shared_state_path(self, budget: str) -> str:
        """Per token and base URL (HubSpot counts per app and account); a digest, never the token."""
        key = hashlib.sha256(f"{self.settings.base_url}\n{self.settings.token}".encode()).hexdigest()[:32]
        return os.path.join(self.settings.shared_limits_dir, f"{key}-{budget}.json")

    def get_conn(self, headers: dict[str, Any] | None = None, extra_options: dict[str, Any] | None = None):
        """The cached ``requests.Session``: Bearer auth, JSON, TLS verified, no settings as headers."""
        return self._session

    @cached_property
    def _session(self) -> requests.Session:
        settings = self.settings
        self.base_url = settings.base_url
        self._base_url_initialized = True
        session = requests.Session()
        session.headers.update(
            {
                "Authorization": f"Bearer {settings.token}",
                "Accept": "application/json",
                "User-Agent": "hubspot-airflow-provider",
            }
        )
        session.verify = True
        session.trust_env = False  # no .netrc credentials or proxy variables rewriting our auth
        if self.keep_alive_adapter is not None:
            session.mount("https://", self.keep_alive_adapter)
            session.mount("http://", self.keep_alive_adapter)
        return session

    def _redact(self, text: str) -> str:
        token = self.__dict__.get("settings") and self.settings.token
        return text.replace(token, "***") if token else text

    # ---- the request path ------------------------------------------------------------------------

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one logical request with rate limiting and retries; return the decoded JSON body."""
        attempts = self.settings.max_retries + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._retry_wait,
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, HubSpotError) and exc.retryable),
            sleep=self._sleep,
            before_sleep=lambda state: self._before_retry(operation, state),
            reraise=False,
        )
        try:
            return retrying(self._send_once, operation, method, path, params, json)
        except tenacity.RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            self.stats.record_error(getattr(last, "status", None) or "transport")
            raise HubSpotRetriesExhaustedError(
                f"HubSpot {operation} failed after {attempts} attempts; last error: {last}",
                status=getattr(last, "status", None),
                conn_id=self.hubspot_conn_id,
            ) from last
        except HubSpotError as err:
            self.stats.record_error(err.status or "transport")
            raise

    def _send_once(self, operation: str, method: str, path: str, params: Any, json: Any) -> Any:
        limiter = self.search_limiter if operation == "search" else self.general_budget
        self.stats.record_wait(limiter.acquire())
        session = self.get_conn()
        url = f"{self.settings.base_url}{path}"
        self.stats.record_call(operation)
        try:
            response = session.request(
                method,
                url,
                params=params,
                json=json,
                timeout=(min(10.0, self.settings.timeout), self.settings.timeout),
                allow_redirects=False,
            )
        except requests.Timeout as err:
            raise HubSpotTransportError(
                f"HubSpot {operation} got no answer within {self.settings.timeout:g} s ({type(err).__name__})",
                conn_id=self.hubspot_conn_id,
            ) from None
        except requests.RequestException as err:
            raise HubSpotTransportError(
                f"HubSpot {operation} could not reach {urlsplit(url).netloc}: {type(err).__name__}",
                conn_id=self.hubspot_conn_id,
            ) from None
        if operation != "search":
            headers = RateLimitHeaders.parse(response.headers)
            self.general_budget.observe(headers)
            if headers and headers.daily_remaining is not None:
                self.stats.daily_remaining = headers.daily_remaining
        return self._decode(operation, response)

    def _decode(self, operation: str, response: requests.Response) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                raise HubSpotServerError(
                    f"HubSpot {operation} answered {status} with a body that is not complete JSON",
                    status=status,
                    conn_id=self.hubspot_conn_id,
                ) from None
        body = self._error_body(response)
        correlation_id = body.get("correlationId")
        correlation_id = self._redact(str(correlation_id)) if correlation_id is not None else None  # echoed bodies
        category = body.get("category") or body.get("errorType")
        category = self._redact(str(category)) if category is not None else None
        message = self._redact(str(body.get("message") or response.reason or "")).strip()
        common = {"status": status, "correlation_id": correlation_id, "category": category, "conn_id": self.hubspot_conn_id}
        conn = self.hubspot_conn_id
        retry_after = self._retry_after(response)

        if 300 <= status < 400:
            raise HubSpotRedirectError(
                f"HubSpot {operation} answered {status} with a redirect; it is not followed so the token is only "
                f"sent to the configured host. Check the host of connection '{conn}'.",
                **common,
            )
        if status == 401:
            raise HubSpotAuthError(
                f"HubSpot rejected the token of connection '{conn}' (401 {category or 'INVALID_AUTHENTICATION'}). "
                "It was revoked, rotated or mistyped: create or rotate the token in HubSpot (Settings > Integrations > "
                f"Private Apps, or Service Keys) and update the password of connection '{conn}'.",
                **common,
            )
        if status == 403:
            scopes = missing_scopes(body)
            if scopes or category == "MISSING_SCOPES":
                listed = ", ".join(scopes) if scopes else "(HubSpot did not name them)"
                raise HubSpotScopeError(
                    f"The token of connection '{conn}' lacks a scope needed for {operation}: grant one of {listed} "
                    "to the private app or service key in HubSpot (read scopes only are needed), then run again.",
                    scopes=scopes,
                    **common,
                )
            raise HubSpotForbiddenError(f"HubSpot refused {operation} (403): {message}", **common)
        if status == 404:
            raise HubSpotNotFoundError(f"HubSpot {operation}: not found (404): {message}", **common)
        if status == 414:
            raise HubSpotUriTooLongError(
                f"HubSpot {operation}: the URL is too long (414), usually too many properties in the query string; "
                "list ids only and batch-read the properties instead.",
                **common,
            )
        if status == 429:
            policy = str(body.get("policyName") or "").upper() or (
                "SECONDLY" if operation == "search" or "secondly" in message.lower() else "TEN_SECONDLY_ROLLING"
            )
            if "secondly" in message.lower() and "ten_secondly" not in message.lower() and policy != "DAILY":
                policy = "SECONDLY"
            self.stats.record_429(policy)
            if policy == "DAILY":
                resets_at = self._daily_reset()
                raise HubSpotDailyLimitError(
                    f"HubSpot's daily API limit for the account behind connection '{conn}' is spent; it resets at "
                    f"midnight in the account's time zone ({resets_at:%Y-%m-%d %H:%M %Z}). Stopped without retrying; "
                    "run again after the reset, or raise the limit in HubSpot.",
                    resets_at=resets_at,
                    **common,
                )
            if retry_after is not None:
                wait = retry_after
            elif policy == "SECONDLY":
                wait = 1.0
            else:
                wait = self.general_budget.interval
            limiter = self.search_limiter if policy == "SECONDLY" else self.general_budget.limiter
            limiter.pause(wait)
            raise HubSpotRateLimitError(
                f"HubSpot rate limit {policy} hit on {operation}: {message}", policy=policy, wait_seconds=wait, **common
            )
        if status in RETRYABLE_STATUSES or status >= 500:
            wait = retry_after
            if status == 423:
                wait = max(2.0, retry_after or 0.0)
            raise HubSpotServerError(
                f"HubSpot {operation} answered {status} {response.reason or ''}: {message}".strip(),
                wait_seconds=wait,
                **common,
            )
        if status == 400:
            if operation == "search" and "10000" in message.replace(",", ""):
                raise HubSpotSearchCapError(
                    f"HubSpot search serves at most {SEARCH_RESULT_CAP:,} results per query: {message}", **common
                )
            raise HubSpotBadRequestError(f"HubSpot rejected {operation} (400 {category or ''}): {message}", **common)
        raise HubSpotError(f"HubSpot {operation} answered {status}: {message}", **common)

    @staticmethod
    def _error_body(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _retry_after(response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None

    def _daily_reset(self) -> datetime:
        zone_name = (self._account or {}).get("timeZone") or self.settings.account_time_zone
        try:
            zone = ZoneInfo(zone_name)
        except Exception:
            zone = ZoneInfo("Europe/Oslo")
        now = datetime.now(zone)
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=zone)

    def _retry_wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        explicit = getattr(error, "wait_seconds", None)
        if explicit is not None:
            return explicit + random.uniform(0, 0.1 * max(explicit, 0.1))
        backoff = min(self.backoff_max, self.backoff_base * 2 ** (state.attempt_number - 1))
        return random.uniform(backoff / 2, backoff)

    def _before_retry(self, operation: str, state: tenacity.RetryCallState) -> None:
        self.stats.record_retry(operation)
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        self.log.warning(
            "HubSpot %s attempt %d failed (%s); retrying in %.1f s", operation, state.attempt_number, error, wait
        )

    def run(self, endpoint: str | None = None, data: Any = None, headers: Any = None, extra_options: Any = None, **kwargs):
        """``HttpHook.run`` compatibility: one JSON request through the limiter and retries."""
        method = self.method
        return self.request(
            "raw", method, "/" + (endpoint or "").lstrip("/"), params=data if method == "GET" else None,
            json=data if method != "GET" else None,
        )

    # ---- primitives --------------------------------------------------------------------------------

    def _path(self, operation: str, **params: str) -> str:
        return api_path(operation, self.settings.api_version, **params)

    def iter_list_pages(
        self,
        object_type: str,
        properties: Iterable[str] | None = None,
        *,
        archived: bool = False,
        limit: int = LIST_PAGE_MAX,
        after: str | None = None,
    ) -> Iterator[ListPage]:
        """Every page of the list endpoint, following the cursor to the end.

        ``archived=True`` lists only archived records (HubSpot's semantics). Properties travel in
        the query string: for wide property sets list ids only and use :meth:`iter_batch_read`.
        """
        params: dict[str, Any] = {"limit": min(limit, LIST_PAGE_MAX), "archived": str(archived).lower()}
        props = list(properties or [])
        if props:
            params["properties"] = ",".join(props)
        path = self._path("list", object_type=object_type)
        while True:
            body = self.request("list", "GET", path, params={**params, **({"after": after} if after else {})})
            after = ((body.get("paging") or {}).get("next") or {}).get("after")
            yield ListPage(results=body.get("results") or [], after=after)
            if not after:
                return

    def search_page(
        self,
        object_type: str,
        *,
        filter_groups: list[dict[str, Any]],
        sorts: list[dict[str, Any]] | None = None,
        properties: Iterable[str] = (),
        limit: int = SEARCH_PAGE_MAX,
        after: int = 0,
    ) -> SearchPage:
        """One search call. Refuses, before calling, to reach past HubSpot's 10,000-result cap."""
        limit = min(limit, SEARCH_PAGE_MAX)
        if after >= SEARCH_RESULT_CAP:
            raise HubSpotSearchCapError(
                f"Search offset {after} is past HubSpot's cap of {SEARCH_RESULT_CAP:,} results per query: "
                "narrow the filter (e.g. a smaller modification-time slice) and search again.",
                conn_id=self.hubspot_conn_id,
            )
        limit = min(limit, SEARCH_RESULT_CAP - after)
        body: dict[str, Any] = {"filterGroups": filter_groups, "properties": list(properties), "limit": limit}
        if sorts:
            body["sorts"] = sorts
        if after:
            body["after"] = str(after)
        answer = self.request("search", "POST", self._path("search", object_type=object_type), json=body)
        results = answer.get("results") or []
        total = int(answer.get("total") or 0)
        raw_next = ((answer.get("paging") or {}).get("next") or {}).get("after")
        next_after = int(raw_next) if raw_next not in (None, "") else None
        return SearchPage(results=results, total=total, after=next_after)

    def iter_search_pages(
        self,
        object_type: str,
        *,
        filter_groups: list[dict[str, Any]],
        sorts: list[dict[str, Any]] | None = None,
        properties: Iterable[str] = (),
        limit: int = SEARCH_PAGE_MAX,
    ) -> Iterator[SearchPage]:
        """Every page of one search; raises :class:`HubSpotSearchCapError` if more than 10,000 match.

        Callers that can meet more than 10,000 matches check ``total`` on the first page and slice.
        """
        after = 0
        props = list(properties)
        while True:
            page = self.search_page(
                object_type, filter_groups=filter_groups, sorts=sorts, properties=props, limit=limit, after=after
            )
            yield page
            if page.after is None or not page.results:
                return
            if page.after >= SEARCH_RESULT_CAP:
                raise HubSpotSearchCapError(
                    f"Search on {object_type} matched {page.total:,} records; HubSpot serves at most "
                    f"{SEARCH_RESULT_CAP:,} per query. Narrow the filter (a smaller modification-time slice, or "
                    "hs_object_id keyset within one millisecond) and search again.",
                    conn_id=self.hubspot_conn_id,
                )
            after = page.after

    def iter_batch_read(
        self, object_type: str, ids: Sequence[str], properties: Iterable[str], *, batch_size: int = BATCH_READ_MAX,
        archived: bool = False,
    ) -> Iterator[BatchReadResult]:
        """Read records by id, ≤100 per call, properties in the body (no URL-length limit).

        A merged-away id comes back as its survivor under the survivor's id; ids HubSpot reports
        as missing (HTTP 207) are listed in ``missing_ids``. ``archived=True`` reads archived records.
        """
        props = list(properties)
        path = self._path("batch_read", object_type=object_type)
        for chunk in _chunks(list(ids), min(batch_size, BATCH_READ_MAX)):
            payload: dict[str, Any] = {"inputs": [{"id": i} for i in chunk], "properties": props}
            if archived:
                payload["archived"] = True
            body = self.request("batch_read", "POST", path, json=payload)
            missing = _error_ids(body, "ids")
            yield BatchReadResult(results=body.get("results") or [], requested_ids=chunk, missing_ids=missing)

    def iter_associations(
        self, from_type: str, to_type: str, ids: Sequence[str], *, batch_size: int = ASSOCIATIONS_BATCH_MAX
    ) -> Iterator[AssociationPage]:
        """All associations of ``ids``, ≤1,000 ids a call, following each id's own paging cursor."""
        path = self._path("associations", from_type=from_type, to_type=to_type)
        pending: list[dict[str, str]] = [{"id": str(i)} for i in ids]
        while pending:
            batch, pending = pending[: min(batch_size, ASSOCIATIONS_BATCH_MAX)], pending[batch_size:]
            body = self.request("associations", "POST", path, json={"inputs": batch})
            results = body.get("results") or []
            for result in results:
                cursor = ((result.get("paging") or {}).get("next") or {}).get("after")
                if cursor:
                    pending.append({"id": str((result.get("from") or {}).get("id")), "after": str(cursor)})
            empty, failed = _association_errors(body)
            yield AssociationPage(results=results, missing_ids=empty + failed, empty_ids=empty, failed_ids=failed)

    def get_record(self, object_type: str, record_id: str, properties: Iterable[str] = ()) -> dict[str, Any]:
        params = {"properties": ",".join(properties)} if properties else None
        return self.request("get", "GET", self._path("get", object_type=object_type, object_id=record_id), params=params)

    def get_properties(self, object_type: str) -> list[dict[str, Any]]:
        """Property definitions (name, label, type, options …) of an object type."""
        return self.request("properties", "GET", self._path("properties", object_type=object_type)).get("results") or []

    def get_pipelines(self, object_type: str = "deals") -> list[dict[str, Any]]:
        """Pipelines with their stages, archived stages included."""
        return self.request("pipelines", "GET", self._path("pipelines", object_type=object_type)).get("results") or []

    def get_account_details(self) -> dict[str, Any]:
        """Portal id, time zone and currencies of the account; cached on the hook."""
        if self._account is None:
            self._account = self.request("account", "GET", self._path("account"))
        return self._account

    # ---- Airflow UI ------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """One real, cheap call (account details): success names the portal, failure the reason."""
        try:
            details = self.get_account_details()
        except HubSpotError as err:
            return False, str(err)
        except Exception as err:  # the UI shows this text: keep it free of the token
            return False, self._redact(f"{type(err).__name__}: {err}")
        return True, (
            f"Connected to HubSpot portal {details.get('portalId')} "
            f"(time zone {details.get('timeZone')}, currency {details.get('companyCurrency')}) "
            f"at {self.settings.base_url} with API version {self.settings.api_version}."
        )
