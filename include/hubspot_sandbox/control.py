"""Python client for the control API (``/_sandbox/…``); works against in-process or CLI sandboxes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class SandboxControlError(RuntimeError):
    def __init__(self, status: int, body):
        super().__init__(f"control call failed with {status}: {body}")
        self.status, self.body = status, body


class SandboxControl:
    """Steer a running sandbox: data, clock, limits, faults, triggers, tokens, stats.

    Record ids are strings or ints; object types accept ``contacts``/``0-1`` etc.
    """

    def __init__(self, base_url: str, timeout: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + "/_sandbox" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
            raise SandboxControlError(e.code, payload) from None

    # state
    def health(self) -> dict:
        return self._call("GET", "/health")

    def state(self) -> dict:
        return self._call("GET", "/state")

    def reset(self, **options) -> dict:
        """Reseed: ``seed``, ``contacts``, ``companies``, ``deals``, ``extra_properties``, … (others keep)."""
        return self._call("POST", "/reset", options)

    def reset_all(self, **sizes) -> dict:
        """Back to a fresh sandbox between tests: no faults or triggers, limits off at Professional defaults,
        default search and association settings, the real clock, reseeded data, zeroed stats."""
        self.clear_faults()
        self.clear_triggers()
        self.set_limits(enabled=False, tier="professional", ten_secondly=None, daily=None, search_per_second=5,
                        interval_ms=10_000, reset_counters=True)
        self.configure(search_lag_ms=0, search_body_limit=3000, association_page_size=500,
                       association_empty_as_error=False)
        self.unfreeze_clock()
        state = self.reset(**sizes)
        self.reset_stats()
        return state

    # records
    def create(self, object_type: str, properties: dict | None = None, at_ms: int | None = None) -> dict:
        return self._call("POST", f"/records/{object_type}", {"properties": properties or {}, "at_ms": at_ms})

    def get(self, object_type: str, record_id) -> dict:
        return self._call("GET", f"/records/{object_type}/{record_id}")

    def modify(self, object_type: str, record_id, properties: dict, at_ms: int | None = None) -> dict:
        return self._call("PATCH", f"/records/{object_type}/{record_id}", {"properties": properties, "at_ms": at_ms})

    def archive(self, object_type: str, record_id, at_ms: int | None = None) -> dict:
        return self._call("POST", f"/records/{object_type}/{record_id}/archive", {"at_ms": at_ms})

    def restore(self, object_type: str, record_id, at_ms: int | None = None) -> dict:
        return self._call("POST", f"/records/{object_type}/{record_id}/restore", {"at_ms": at_ms})

    def purge(self, object_type: str, record_id, at_ms: int | None = None) -> dict:
        """Permanent (GDPR) delete: the record vanishes from every HubSpot read; ``get`` still shows it."""
        return self._call("POST", f"/records/{object_type}/{record_id}/purge", {"at_ms": at_ms})

    def merge(self, object_type: str, primary, absorbed, at_ms: int | None = None) -> dict:
        return self._call("POST", f"/records/{object_type}/merge",
                          {"primary": str(primary), "absorbed": str(absorbed), "at_ms": at_ms})

    def bulk_touch(self, object_type: str, count: int, at_ms: int | None = None, properties: dict | None = None,
                   start: int = 0) -> dict:
        """Stamp ``count`` live records with one modification millisecond (a HubSpot bulk job)."""
        return self._call("POST", f"/records/{object_type}/bulk_touch",
                          {"count": count, "at_ms": at_ms, "properties": properties, "start": start})

    # associations
    def associate(self, from_type: str, from_id, to_type: str, to_id, primary: bool = False) -> dict:
        return self._call("POST", "/associations", {"from_type": from_type, "from_id": str(from_id),
                                                     "to_type": to_type, "to_id": str(to_id), "primary": primary})

    def dissociate(self, from_type: str, from_id, to_type: str, to_id) -> dict:
        return self._call("DELETE", "/associations", {"from_type": from_type, "from_id": str(from_id),
                                                       "to_type": to_type, "to_id": str(to_id)})

    # clock and config
    def clock(self) -> dict:
        return self._call("GET", "/clock")

    def freeze_clock(self, at_ms: int | None = None) -> dict:
        return self._call("POST", "/clock", {"freeze": True, "at_ms": at_ms})

    def unfreeze_clock(self) -> dict:
        return self._call("POST", "/clock", {"freeze": False})

    def set_clock(self, at_ms: int) -> dict:
        return self._call("POST", "/clock", {"at_ms": at_ms})

    def advance_clock(self, ms: int) -> dict:
        return self._call("POST", "/clock", {"advance_ms": ms})

    def configure(self, **options) -> dict:
        """Live options: search_lag_ms, search_body_limit, association_page_size, max_url_length, touch_on_associate,
        association_empty_as_error."""
        return self._call("POST", "/config", options)

    def set_search_lag(self, ms: int) -> dict:
        return self.configure(search_lag_ms=int(ms))

    # limits
    def limits(self) -> dict:
        return self._call("GET", "/limits")

    def set_limits(self, **options) -> dict:
        """enabled, tier, ten_secondly, daily, search_per_second, interval_ms, reset_counters, daily_used."""
        return self._call("POST", "/limits", options)

    # faults
    def add_fault(self, path: str = ".*", **rule) -> dict:
        """See ``faults.FaultRule``: method, action (respond, reset, short_body, delay, drop_ids, assoc_errors), status,
        body, body_kind, retry_after, delay_s, times, every, drop_ids, drop_every."""
        return self._call("POST", "/faults", {"path": path, **rule})

    def faults(self) -> list[dict]:
        return self._call("GET", "/faults")["rules"]

    def remove_fault(self, rule_id: str) -> dict:
        return self._call("DELETE", f"/faults/{rule_id}")

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/faults")

    # triggers: mutations in the middle of a scan
    def after_calls(self, kind: str, n: int, actions: list[dict], object_type: str | None = None) -> str:
        """After the Nth successful HubSpot call of ``kind`` (``search``, ``batch_read``, ``list``, ``associations``,
        ``any``, …) on ``object_type`` (any if None) from now, apply ``actions`` (``{"method", "path", "body"}``
        control calls) once, before that call's response is sent. Returns the trigger id."""
        body = {"kind": kind, "n": int(n), "actions": actions, "object_type": object_type}
        return self._call("POST", "/triggers", body)["id"]

    def edit_between_search_pages(self, object_type: str, after_page: int, edits, at_ms: int | None = None) -> str:
        """Modify records (``edits``: ``[(record_id, properties), …]``) right after search page ``after_page``
        (1-based, counting search calls on ``object_type`` from now). Stamped with the sandbox clock unless ``at_ms``."""
        actions = [{"method": "PATCH", "path": f"/_sandbox/records/{object_type}/{rid}",
                    "body": {"properties": props, "at_ms": at_ms}} for rid, props in edits]
        return self.after_calls("search", after_page, actions, object_type=object_type)

    def triggers(self) -> list[dict]:
        return self._call("GET", "/triggers")["triggers"]

    def clear_triggers(self) -> dict:
        return self._call("DELETE", "/triggers")

    # stats
    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def reset_stats(self) -> dict:
        return self._call("POST", "/stats/reset")

    # tokens
    def tokens(self) -> list[dict]:
        return self._call("GET", "/tokens")["tokens"]

    def add_token(self, scopes=None, token: str | None = None) -> str:
        return self._call("POST", "/tokens", {"scopes": scopes, "token": token})["token"]

    def revoke_token(self, token: str | None = None) -> dict:
        return self._call("POST", "/tokens/revoke", {"token": token})

    def rotate_token(self, token: str | None = None, grace_seconds: float = 0) -> str:
        return self._call("POST", "/tokens/rotate", {"token": token, "grace_seconds": grace_seconds})["token"]

    def set_scopes(self, scopes, token: str | None = None) -> list[str]:
        return self._call("POST", "/tokens/scopes", {"scopes": list(scopes), "token": token})["scopes"]
