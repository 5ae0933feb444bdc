"""Reach a sandbox running in another process, the way a person at a terminal does.

``RunningSandbox`` wraps the control client (``control.SandboxControl``) and the HubSpot API with
errors that say what to do: nothing answers (start one), no such id (the id range), a record a
person could not edit (archived, merged away, purged), no token the sandbox accepts. The control API
needs no token; HubSpot reads use the token the sandbox wrote to its token file, never printed.
Used by ``hubspot_devtools.sandbox_edit``.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import requests

from .control import SandboxControl, SandboxControlError
from .schema import SINGULAR


class SandboxError(Exception):
    """Something the person can fix; the message says how."""


class SandboxNotRunning(SandboxError):
    """Nothing (or not a sandbox) answers at the URL."""


class RecordNotFound(SandboxError):
    """No record of that type has the id."""


class NotEditable(SandboxError):
    """The record is archived, merged away or purged: a person could not edit it in HubSpot either."""


class TokenProblem(SandboxError):
    """No token file, or none the sandbox accepts."""


class RunningSandbox:
    """Control calls with errors a person can act on, and HubSpot reads with the sandbox's token.

    ``token_files``: where sandboxes write their token; the newest is tried first, and one the sandbox
    rejects (left by an earlier one) is skipped. ``prog`` names the command the hints suggest.
    """

    def __init__(self, url: str, token_files=(), prog: str = "sandbox_edit"):
        self.url = url.rstrip("/")
        self.control = SandboxControl(self.url, timeout=15)
        self.token_files = [Path(p) for p in token_files]
        self.prog = prog

    def call(self, method: str, *args, **kwargs):
        try:
            return getattr(self.control, method)(*args, **kwargs)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise self._not_running(exc) from None
        except SandboxControlError as exc:
            if isinstance(exc.body, dict) and "error" in exc.body:
                raise
            raise self._not_running(f"it answered {exc.status} but is not a HubSpot sandbox") from None

    def _not_running(self, exc) -> SandboxNotRunning:
        return SandboxNotRunning(f"No sandbox answers at {self.url} ({getattr(exc, 'reason', exc)}). Start one with "
                                 "`make sandbox` (or `make airflow`), or point --url / SANDBOX_URL at yours.")

    def record(self, otype: str, rid: str) -> dict:
        """The record whatever its state (live, archived, merged away, purged)."""
        try:
            return self.call("get", otype, rid)
        except SandboxControlError as exc:
            if exc.status != 404:
                raise SandboxError(f"The sandbox refused to read {SINGULAR[otype]} {rid}: {exc.body}") from None
            counts = self.call("state")["counts"][otype]
            raise RecordNotFound(f"There is no {SINGULAR[otype]} {rid} in the sandbox (its {otype} have ids "
                                 f"{counts['first_id']}–{counts['last_id']}); `{self.prog} list {otype}` shows the "
                                 "latest.") from None

    def live(self, otype: str, rid: str) -> dict:
        """The record, if a person could still edit it in HubSpot; else why not and what to do."""
        rec = self.record(otype, rid)
        what = f"{SINGULAR[otype]} {rid}"
        if rec.get("purged"):
            raise NotEditable(f"{what} was deleted permanently; HubSpot cannot bring it back. Pick another id.")
        if rec.get("mergedInto"):
            raise NotEditable(f"{what} was merged into {rec['mergedInto']}; edit {rec['mergedInto']} instead.")
        if rec.get("archived"):
            raise NotEditable(f"{what} is archived (deleted in HubSpot); restore it first: {self.prog} restore {otype} {rid}")
        return rec

    def change(self, method: str, *args, **kwargs) -> dict:
        try:
            return self.call(method, *args, **kwargs)
        except SandboxControlError as exc:
            body = exc.body.get("error") if isinstance(exc.body, dict) else exc.body
            raise SandboxError(f"The sandbox refused the change ({exc.status}): {body}") from None

    # ---------------------------------------------------------------- HubSpot reads, with the token
    def _tokens(self) -> list[tuple[Path, str]]:
        files = sorted((p for p in self.token_files if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
        found = [(p, p.read_text().strip()) for p in files if p.read_text().strip()]
        if not found:
            raise TokenProblem(f"No sandbox token in {' or '.join(map(str, self.token_files))}. `make sandbox` and "
                               "`make airflow` write one; for another sandbox pass --token-file.")
        return found

    def hubspot(self, method: str, path: str, **kwargs) -> dict:
        tried = []
        for path_, token in self._tokens():
            try:
                r = requests.request(method, self.url + path, headers={"Authorization": f"Bearer {token}"},
                                     timeout=30, **kwargs)
            except requests.ConnectionError as exc:
                raise self._not_running(exc) from None
            if r.status_code == 401:
                tried.append(str(path_))
                continue
            if r.status_code == 429:
                raise SandboxError("The sandbox's rate limit is used up for now (a sync running?); try again in ten seconds.")
            if not r.ok:
                raise SandboxError(f"The sandbox answered {r.status_code} to {method} {path}: {r.text[:300]}")
            return r.json()
        raise TokenProblem(f"The sandbox at {self.url} rejected the token in {', '.join(tried)} (left by an earlier "
                           "sandbox?); pass --token-file with the file the running sandbox wrote.")
