"""Shared sandbox fixtures: one small portal per module, rate limits off unless a test opts in."""

from __future__ import annotations

import pytest
import requests

from hubspot_sandbox.testing import run_sandbox


class Client:
    """Tiny requests wrapper bound to a sandbox's URL and token."""

    def __init__(self, sb):
        self.sb = sb
        self.s = requests.Session()

    def get(self, path, **params):
        return self.s.get(self.sb.url + path, params=params, headers=self.sb.auth_headers(), timeout=30)

    def post(self, path, body):
        return self.s.post(self.sb.url + path, json=body, headers=self.sb.auth_headers(), timeout=30)


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(seed=7, contacts=300, companies=60, deals=200) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox):
    """The module sandbox, reseeded and with faults/limits/clock restored after each test."""
    yield sandbox
    sandbox.control.reset_all(seed=7, contacts=300, companies=60, deals=200, extra_properties=5)


@pytest.fixture()
def client(sb):
    return Client(sb)
