"""The agent serves /healthz and /readyz with the operator's probe server: unhealthy once one of its threads died."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from cluster_discovery_agent.cli import parse_args, thread_health
from cluster_discovery_operator.probes import ProbeServer
from cluster_discovery_operator.settings import ProbeSettings


def get(address: tuple[str, int], path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{address[0]}:{address[1]}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode().strip()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode().strip()


def test_probes_answer_ok_while_every_thread_runs_and_503_naming_the_one_that_stopped() -> None:
    stop = threading.Event()
    running = threading.Thread(target=stop.wait, name="watch identities", daemon=True)
    finished = threading.Thread(target=lambda: None, name="node status", daemon=True)
    threads = [running, finished]
    running.start()
    server = ProbeServer(
        ProbeSettings(bind_address="127.0.0.1:0"),
        readiness=lambda: thread_health(threads),
        liveness=lambda: thread_health(threads),
    )
    address = server.start()
    assert address is not None
    try:
        finished.start()
        finished.join()
        assert get(address, "/healthz") == (503, "stopped: node status")
        assert get(address, "/readyz") == (503, "stopped: node status")
        threads.remove(finished)
        assert get(address, "/healthz") == (200, "ok")
        assert get(address, "/readyz") == (200, "ok")
    finally:
        server.stop()
        stop.set()


def test_a_malformed_probe_address_is_refused_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--health-probe-bind-address=nonsense"])
    assert "--health-probe-bind-address" in capsys.readouterr().err
