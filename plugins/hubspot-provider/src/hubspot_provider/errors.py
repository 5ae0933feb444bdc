"""Typed HubSpot errors whose messages tell the operator what to do, and never carry the token.

Every error keeps HubSpot's ``correlationId`` (what HubSpot support asks for) and the HTTP status.
``retryable`` tells the hook's retry policy whether another attempt can help.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class HubSpotError(Exception):
    """Base class. ``str(error)`` is safe to log: it never contains the token."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        correlation_id: str | None = None,
        category: str | None = None,
        conn_id: str | None = None,
    ) -> None:
        self.status = status
        self.correlation_id = correlation_id
        self.category = category
        self.conn_id = conn_id
        if correlation_id:
            message = f"{message} (HubSpot correlationId {correlation_id})"
        super().__init__(message)


class HubSpotConfigError(HubSpotError):
    """The connection is unusable as configured (bad host, scheme, version, missing token)."""


class HubSpotAuthError(HubSpotError):
    """401: the token was rejected (revoked, rotated, mistyped or missing)."""


class HubSpotScopeError(HubSpotError):
    """403 MISSING_SCOPES: the token lacks a scope; ``scopes`` lists what HubSpot asked for."""

    def __init__(self, message: str, *, scopes: list[str], **kwargs: Any) -> None:
        self.scopes = scopes
        super().__init__(message, **kwargs)


class HubSpotForbiddenError(HubSpotError):
    """403 for another reason than scopes."""


class HubSpotNotFoundError(HubSpotError):
    """404: unknown object, record or path."""


class HubSpotBadRequestError(HubSpotError):
    """400: HubSpot rejected the request itself; retrying the same request cannot help."""


class HubSpotSearchCapError(HubSpotBadRequestError):
    """A search asked for results beyond HubSpot's 10,000-per-query cap: narrow the filter instead."""


class HubSpotUriTooLongError(HubSpotError):
    """414: too many properties in the query string; read ids first, then batch-read properties."""


class HubSpotRedirectError(HubSpotError):
    """A 3xx: the token is only ever sent to the configured host, so redirects are not followed."""


class HubSpotDailyLimitError(HubSpotError):
    """429 with policy DAILY: the account's daily budget is spent; retrying before it resets is wasted."""

    def __init__(self, message: str, *, resets_at: datetime | None = None, **kwargs: Any) -> None:
        self.resets_at = resets_at
        super().__init__(message, **kwargs)


class HubSpotRateLimitError(HubSpotError):
    """429 ten-secondly or search secondly: wait out the window and try again."""

    retryable = True

    def __init__(self, message: str, *, policy: str | None = None, wait_seconds: float | None = None, **kwargs: Any):
        self.policy = policy
        self.wait_seconds = wait_seconds
        super().__init__(message, **kwargs)


class HubSpotServerError(HubSpotError):
    """423, 477, 5xx or an unreadable body: HubSpot or the network had a passing problem."""

    retryable = True

    def __init__(self, message: str, *, wait_seconds: float | None = None, **kwargs: Any) -> None:
        self.wait_seconds = wait_seconds
        super().__init__(message, **kwargs)


class HubSpotTransportError(HubSpotError):
    """Connection refused or reset, or no answer within the timeout."""

    retryable = True


class HubSpotRetriesExhaustedError(HubSpotError):
    """A retryable problem persisted through every allowed attempt."""
