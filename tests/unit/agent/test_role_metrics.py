"""The agent's side of the peer gauges between rounds (role_metrics.py), against a real Unix socket.

Covered: requests go one JSON object per line; without a socket nothing is sent; an operator that does not listen
costs a warning once, not one per pass, and sending again says so once.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path

import pytest
from cluster_discovery_agent.role_metrics import RoleMetrics

REQUEST = {"name": "gauge_a", "labels": {"identity_name": "a"}, "gauge": {"set": 1}}


def listen(path: Path) -> tuple[socket.socket, list[bytes], threading.Thread]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    received: list[bytes] = []

    def accept() -> None:
        connection, _ = server.accept()
        with connection:
            while chunk := connection.recv(65536):
                received.append(chunk)

    reader = threading.Thread(target=accept, daemon=True)
    reader.start()
    return server, received, reader


def test_requests_are_sent_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    server, received, reader = listen(path)
    with server:
        assert RoleMetrics(str(path)).send([REQUEST, {**REQUEST, "gauge": {"set": 0}}])
        reader.join(timeout=5)
    lines = b"".join(received).splitlines()
    assert [json.loads(line) for line in lines] == [REQUEST, {**REQUEST, "gauge": {"set": 0}}]


def test_without_a_socket_nothing_is_sent() -> None:
    assert not RoleMetrics(None).send([REQUEST])


def test_an_operator_that_does_not_listen_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "sock"
    metrics = RoleMetrics(str(path), timeout=0.5)
    with caplog.at_level(logging.INFO, logger="cluster_discovery_agent.role_metrics"):
        assert not metrics.send([REQUEST])
        assert not metrics.send([REQUEST])
        server, _, reader = listen(path)
        with server:
            assert metrics.send([REQUEST])
            reader.join(timeout=5)  # accepted and read before the server closes, or accept() fails in its thread
    assert [record.getMessage() for record in caplog.records] == [
        "could not set the peer gauges; the next round sets them",
        "setting the peer gauges again",
    ]
