"""The probe server's own failures stay in the structured log, never on stderr."""

from __future__ import annotations

import socket
import struct
import time
import urllib.request

import pytest
from cluster_discovery_operator.probes import ProbeServer
from cluster_discovery_operator.settings import ProbeSettings


def _reset_mid_request(address: tuple[str, int]) -> None:
    """Sends half a request line and hangs up with a TCP reset, as a kubelet timing out can."""
    with socket.create_connection(address) as conn:
        conn.sendall(b"GET /hea")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_client_that_resets_the_connection_leaves_nothing_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """Issue 19: every line the operator and the agent print is one JSON event. socketserver's default handler of a
    request that failed prints a traceback between two rulers of dashes on stderr; CI caught one in the agent's log."""
    server = ProbeServer(ProbeSettings(bind_address="127.0.0.1:0"), lambda: (True, "ok"))
    address = server.start()
    assert address is not None
    try:
        for _ in range(5):
            _reset_mid_request(address)
        # The server still answers, and has handled the resets by the time it does (one request at a time per client).
        time.sleep(0.2)
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/healthz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        server.stop()
    captured = capfd.readouterr()
    assert "-" * 40 not in captured.err, captured.err
    assert "Traceback" not in captured.err, captured.err
