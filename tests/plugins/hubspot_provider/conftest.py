import numpy as np
import pytest

from hubspot_sandbox.testing import run_sandbox

SIZES = {"seed": 11, "contacts": 450, "companies": 40, "deals": 120}


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(**SIZES) as sb:
        yield sb


@pytest.fixture()
def sb(sandbox):
    yield sandbox
    sandbox.control.reset_all(**SIZES)


def _live_ids(sb, object_type):
    store = sb.portal.store(object_type)
    return {str(i) for i in store.ids(np.nonzero(store.active_mask())[0])}


@pytest.fixture()
def live_ids():
    """Ground truth from the sandbox's own store: the live (not archived, not merged-away) ids."""
    return _live_ids


@pytest.fixture()
def no_token_leak(sb, caplog, capsys):
    """Fails the test if the sandbox token shows up in any log record or captured output."""
    yield
    out, err = capsys.readouterr()
    texts = [out, err, caplog.text] + [str(r.args) for r in caplog.records]
    for text in texts:
        assert sb.token not in text
