"""`make airflow` says at once which port it cannot have, instead of waiting minutes for a server that cannot bind."""

from __future__ import annotations

import socket

import pytest

from hubspot_devtools import devserver


def test_a_port_in_use_fails_at_once_naming_the_port_and_the_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(devserver.PortTakenError, match=rf"port {port} \(the Airflow UI\) is used by another program.*AIRFLOW_PORT={port + 1} make airflow"):
            devserver.check_port_free(port, "the Airflow UI", "AIRFLOW_PORT")
        code = devserver.main(["--port", str(port), "--sandbox-port", "0", "--workdir", str(tmp_path)])
    assert code == 1
    assert not (tmp_path / "home").exists()  # nothing was started


def test_a_free_port_passes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    devserver.check_port_free(port, "the Airflow UI", "AIRFLOW_PORT")


def test_a_server_that_could_not_bind_is_read_from_airflows_output_since_this_start(tmp_path):
    log = tmp_path / "airflow.log"
    log.write_text("earlier session: [Errno 98] Address already in use\n")
    offset = log.stat().st_size
    assert not devserver.port_taken_in(log, offset)  # an old session's line does not count
    with log.open("a") as fh:
        fh.write("ERROR: [Errno 98] error while attempting to bind on address ('127.0.0.1', 8080): address already in use\n")
    assert devserver.port_taken_in(log, offset)
