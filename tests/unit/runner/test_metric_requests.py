"""Role metrics set between runs on the operator's Unix socket (metric_requests.py), over a real socket.

Covered: a request line is applied as a run's osdk_metric would be; the socket is made mode 0600; requests that
describe no watched object, or one the caches do not hold (deleted), are refused, as are bad JSON, a line over the
limit and what apply_user_metric refuses, while the connection goes on with the next line; a socket left by an
earlier process is replaced, a regular file at the path is not; stop removes the socket. The agent's side
(agent/.../role_metrics.py) sends to it in tests/unit/agent/test_role_metrics.py; the whole path, agent to
operator, is in tests/integration/roles/test_swarm_members.py.
"""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cluster_discovery_operator.metric_requests import MAX_LINE_BYTES, MetricRequests
from cluster_discovery_operator.metrics import OperatorMetrics

GAUGE = "cluster_discovery_controller_identity_controller_peers_number"
WATCHED = {("default", "cluster1-identity")}


def unknown_object(labels: Mapping[str, str]) -> str | None:
    if "identity_name" not in labels:
        return "the labels describe no watched object"
    if (labels.get("identity_namespace"), labels["identity_name"]) not in WATCHED:
        return "Identity gone"
    return None


def request(value: float, *, name: str = "cluster1-identity", metric: str = GAUGE) -> dict[str, Any]:
    return {
        "name": metric,
        "description": "Number of known peer associated to a given identity",
        "labels": {"identity_name": name, "identity_namespace": "default", "status": "Out of sync"},
        "gauge": {"set": value},
    }


def line(item: Any) -> bytes:
    return json.dumps(item).encode() + b"\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[MetricRequests, OperatorMetrics]]:
    metrics = OperatorMetrics()
    requests = MetricRequests(tmp_path / "role-metrics.sock", metrics, unknown_object=unknown_object)
    requests.start()
    try:
        yield requests, metrics
    finally:
        requests.stop()


def send(path: Path, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(path))
        connection.sendall(data)


def value(metrics: OperatorMetrics, name: str = "cluster1-identity") -> float | None:
    labels = {"identity_name": name, "identity_namespace": "default", "status": "Out of sync"}
    return metrics.registry.get_sample_value(GAUGE, labels)


def wait_for_value(metrics: OperatorMetrics, expected: float) -> None:
    deadline = time.monotonic() + 5
    while value(metrics) != expected:
        assert time.monotonic() < deadline, f"the gauge is {value(metrics)}, not {expected}"
        time.sleep(0.02)


def test_a_request_is_applied_as_a_runs_osdk_metric_and_the_socket_is_its_owners_only(
    served: tuple[MetricRequests, OperatorMetrics],
) -> None:
    requests, metrics = served
    assert stat.S_IMODE(requests.path.stat().st_mode) == 0o600
    send(requests.path, line(request(1)))
    wait_for_value(metrics, 1)
    send(requests.path, line(request(0)))
    wait_for_value(metrics, 0)


def test_refused_lines_change_nothing_and_the_connection_goes_on(
    served: tuple[MetricRequests, OperatorMetrics],
) -> None:
    requests, metrics = served
    refused = [
        b"{not json\n",
        line([request(5)]),
        line(request(5, name="deleted-identity")),  # its object is gone: the series would come back for good
        line({**request(5), "labels": {"status": "Out of sync"}}),  # describes no object
        line({**request(5), "labels": "identity_name=cluster1-identity"}),
        line(request(5, metric="ansible_operator_build_info")),  # the operator's own
        line({key: item for key, item in request(5).items() if key != "gauge"}),
    ]
    send(requests.path, b"".join(refused) + line(request(3)))
    wait_for_value(metrics, 3)
    assert value(metrics, "deleted-identity") is None
    for refused_line in refused:
        assert requests.apply(refused_line) is False


def test_a_line_over_the_limit_ends_that_connection_only(served: tuple[MetricRequests, OperatorMetrics]) -> None:
    requests, metrics = served
    send(requests.path, b"x" * (MAX_LINE_BYTES + 10) + b"\n" + line(request(7)))
    time.sleep(0.2)
    assert value(metrics) is None
    send(requests.path, line(request(2)))
    wait_for_value(metrics, 2)


def test_a_socket_left_by_an_earlier_process_is_replaced_and_stop_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "role-metrics.sock"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))
    left.close()  # the file stays, as after a crash
    metrics = OperatorMetrics()
    requests = MetricRequests(path, metrics, unknown_object=unknown_object)
    requests.start()
    send(path, line(request(4)))
    wait_for_value(metrics, 4)
    requests.stop()
    assert not path.exists()


def test_a_regular_file_at_the_path_is_left_alone_and_start_fails(tmp_path: Path) -> None:
    path = tmp_path / "role-metrics.sock"
    path.write_text("not ours")
    with pytest.raises(OSError):
        MetricRequests(path, OperatorMetrics(), unknown_object=unknown_object).start()
    assert path.read_text() == "not ours"
