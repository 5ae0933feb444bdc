"""Bearer tokens of the sandbox account: generated or given at start, never hard-coded.

Each token has its own scope set; tokens can be added, revoked and rotated (optionally with a
grace period during which the old token keeps working), as in HubSpot's private-app settings.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from . import schema


def new_token() -> str:
    return f"pat-na1-{uuid.uuid4()}"


@dataclass
class Token:
    value: str
    scopes: set[str] = field(default_factory=lambda: set(schema.ALL_READ_SCOPES))
    revoked: bool = False
    expires_at: float | None = None  # monotonic seconds; set by a rotation with grace

    def valid(self) -> bool:
        if self.revoked:
            return False
        return self.expires_at is None or time.monotonic() < self.expires_at


class TokenStore:
    def __init__(self, token: str | None = None, scopes=None):
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self.primary = self.add(token or new_token(), scopes)

    def add(self, value: str | None = None, scopes=None) -> str:
        value = value or new_token()
        with self._lock:
            self._tokens[value] = Token(value, set(scopes) if scopes is not None else set(schema.ALL_READ_SCOPES))
        return value

    def get(self, value: str | None) -> Token | None:
        if not value:
            return None
        with self._lock:
            t = self._tokens.get(value)
        return t if t is not None and t.valid() else None

    def revoke(self, value: str | None = None) -> str:
        value = value or self.primary
        with self._lock:
            if value not in self._tokens:
                raise KeyError(value)
            self._tokens[value].revoked = True
        return value

    def rotate(self, value: str | None = None, grace_seconds: float = 0.0) -> str:
        """Replace a token with a new one carrying the same scopes; the old one dies now or after grace."""
        old = value or self.primary
        with self._lock:
            t = self._tokens[old]
            new = new_token()
            self._tokens[new] = Token(new, set(t.scopes))
            if grace_seconds and grace_seconds > 0:
                t.expires_at = time.monotonic() + grace_seconds
            else:
                t.revoked = True
            if old == self.primary:
                self.primary = new
        return new

    def set_scopes(self, scopes, value: str | None = None) -> list[str]:
        value = value or self.primary
        with self._lock:
            self._tokens[value].scopes = set(scopes)
            return sorted(self._tokens[value].scopes)

    def describe(self) -> list[dict]:
        with self._lock:
            return [{"token_suffix": v[-6:], "primary": v == self.primary, "valid": t.valid(),
                     "scopes": sorted(t.scopes)} for v, t in self._tokens.items()]
