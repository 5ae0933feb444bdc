"""Secrets and transport: TLS cannot be switched off, plain http only to loopback, the token never
follows a redirect, and each read scope's absence fails with a message naming that scope."""

from __future__ import annotations

import http.server
import json
import ssl
import subprocess
import threading

import pytest

import reliability_harness as h
from hubspot_provider.errors import HubSpotConfigError, HubSpotRedirectError, HubSpotRetriesExhaustedError, HubSpotScopeError
from hubspot_provider.hooks.hubspot import HubSpotHook
from hubspot_sandbox.testing import run_sandbox

ALL_SCOPES = ["crm.objects.contacts.read", "crm.objects.deals.read", "crm.objects.companies.read", "crm.objects.owners.read",
              "crm.schemas.contacts.read", "crm.schemas.deals.read", "crm.schemas.companies.read"]


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        Recorder.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        body = b'{"portalId": 666}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    def start(tls_dir=None):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        if tls_dir is not None:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                            "-keyout", str(tls_dir / "key.pem"), "-out", str(tls_dir / "cert.pem")], check=True, capture_output=True)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_dir / "cert.pem", tls_dir / "key.pem")
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    servers: list = []
    Recorder.seen = []
    yield start
    for srv in servers:
        srv.shutdown()


def test_tls_verification_cannot_be_switched_off(server, tmp_path, monkeypatch):
    srv = server(tls_dir=tmp_path)
    url = f"https://127.0.0.1:{srv.server_address[1]}"
    for extra in ({"verify": False}, {"verify": "false", "verify_ssl": False, "insecure": True}):
        monkeypatch.setenv("AIRFLOW_CONN_TLS", json.dumps({"conn_type": "hubspot", "host": url, "password": "pat-eu1-secret", "extra": extra}))
        hook = HubSpotHook("tls", max_retries=0)
        assert hook.get_conn().verify is True
        with pytest.raises(HubSpotRetriesExhaustedError, match=r"last error: HubSpot account could not reach 127\.0\.0\.1:\d+: SSLError$"):
            hook.get_account_details()
    assert Recorder.seen == []  # the self-signed server never got a request (nor the token)


def test_plain_http_to_a_non_loopback_host_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN", json.dumps({"conn_type": "hubspot", "host": "http://10.1.2.3:8080", "password": "pat-eu1-secret"}))
    with pytest.raises(HubSpotConfigError, match=r"^Refusing plain http to 10\.1\.2\.3: the token must travel over TLS"):
        HubSpotHook("plain").get_account_details()


def test_token_never_follows_a_redirect_to_another_host(server, monkeypatch):
    other = server()
    elsewhere = f"http://127.0.0.1:{other.server_address[1]}/account-info/v3/details"
    with run_sandbox(contacts=5, companies=2, deals=2) as sb:
        for status in (301, 302, 307, 308):
            sb.control.clear_faults()
            sb.control.add_fault(path="account-info", status=status, headers={"Location": elsewhere}, body={})
            monkeypatch.setenv("AIRFLOW_CONN_REDIR", json.dumps({"conn_type": "hubspot", "host": sb.url, "password": sb.token}))
            with pytest.raises(HubSpotRedirectError, match=f"answered {status} with a redirect; it is not followed"):
                HubSpotHook("redir").get_account_details()
    assert Recorder.seen == []


SCOPE_CASES = {
    # removed scope → (message names, failing step)
    "crm.objects.contacts.read": ("crm.objects.contacts.read", "plan"),
    "crm.objects.deals.read": ("crm.objects.deals.read", "plan"),
    "crm.objects.companies.read": ("crm.objects.companies.read", "plan"),
}


@pytest.mark.parametrize("removed", list(SCOPE_CASES))
def test_each_missing_read_scope_fails_naming_it(use, target, removed):
    with run_sandbox(frozen_clock_ms=h.T0, contacts=20, companies=5, deals=10) as sb:
        use(sb)
        sb.control.set_scopes([s for s in ALL_SCOPES if s != removed])
        step = "plan"
        with pytest.raises(HubSpotScopeError) as failed:
            planned = h.plan("run-1", h.NOW1)
            step = "extract"
            manifests = h.extract(planned, "run-1")
            step = "load"
            h.load(planned, manifests, "run-1")
        named, expected_step = SCOPE_CASES[removed]
        assert f"grant one of {named}" in str(failed.value) or named in failed.value.scopes
        assert named in str(failed.value) and "read scopes only are needed" in str(failed.value)
        assert step == expected_step
        assert target.snapshot() == {}


@pytest.mark.parametrize("removed", [["crm.schemas.contacts.read", "crm.schemas.deals.read", "crm.schemas.companies.read"],
                                     ["crm.objects.owners.read"]], ids=["schemas", "owners"])
def test_scopes_the_sync_does_without(use, target, removed):
    """With the object read scopes, HubSpot also serves properties and pipelines (schemas scopes optional);
    the sync never calls the owners endpoint."""
    with run_sandbox(frozen_clock_ms=h.T0, contacts=20, companies=5, deals=10) as sb:
        use(sb)
        sb.control.set_scopes([s for s in ALL_SCOPES if s not in removed])
        assert h.sync("run-1", h.NOW1)["status"] == "success"
