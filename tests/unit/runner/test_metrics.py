"""Metrics: operator-sdk's names, role metrics, and the authenticated HTTPS endpoint.

Covered: operator-sdk's three metrics are exported; osdk_metric requests with
operator-sdk's semantics (counter, gauge, histogram, summary), ``set: 0`` and
labels, and the refusals (type or label change, bad names, negative counter);
the authorizer's answers (401 without or with a rejected token, 403 when the
SubjectAccessReview denies, 200 when it allows, 503 when reviews fail) and its
cache; the HTTPS server end to end over loopback with a generated certificate.
The real TokenReview/SubjectAccessReview path is in tests/integration/runner.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import pytest
from cluster_discovery_operator.kube import TemporaryKubeError
from cluster_discovery_operator.metrics import (
    MAX_CONCURRENT_REQUESTS,
    Authorizer,
    MetricError,
    MetricsServer,
    OperatorMetrics,
)
from cluster_discovery_operator.settings import MetricsSettings


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_operator_sdks_metrics_are_exported() -> None:
    text = OperatorMetrics().exposition().decode()
    assert "ansible_operator_build_info{" in text
    assert "# TYPE ansible_operator_reconcile_result gauge" in text
    assert "# TYPE ansible_operator_reconciles histogram" in text


def test_the_operators_process_and_its_zygotes_are_exported_while_the_zygote_runs() -> None:
    metrics = OperatorMetrics()
    zygote: list[int | None] = [os.getppid()]  # any live process of ours stands for the zygote
    metrics.watch_process("cluster_discovery_operator_zygote", lambda: zygote[0])
    assert (sample(metrics, "process_resident_memory_bytes") or 0) > 0
    assert (sample(metrics, "cluster_discovery_operator_zygote_process_resident_memory_bytes") or 0) > 0
    zygote[0] = None  # stopped: its series go, the operator's stay
    assert sample(metrics, "cluster_discovery_operator_zygote_process_resident_memory_bytes") is None
    assert (sample(metrics, "process_cpu_seconds_total") or 0) >= 0


def test_gauges_follow_operator_sdk_semantics_and_accept_zero_and_labels() -> None:
    metrics = OperatorMetrics()
    base = {"name": "peers", "description": "Peers seen", "labels": {"identity_name": "a"}}
    metrics.apply_user_metric({**base, "gauge": {"set": 4}})
    metrics.apply_user_metric({**base, "gauge": {"increment": True}})
    metrics.apply_user_metric({**base, "gauge": {"subtract": 2}})
    assert sample(metrics, "peers", identity_name="a") == 3
    metrics.apply_user_metric({**base, "gauge": {"set": 0}})
    assert sample(metrics, "peers", identity_name="a") == 0, "operator-sdk ignored set: 0; we do not"
    metrics.apply_user_metric({**base, "labels": {"identity_name": "b"}, "gauge": {"set": 7}})
    assert sample(metrics, "peers", identity_name="b") == 7
    text = metrics.exposition().decode()
    assert 'peers{identity_name="a"} 0.0' in text and 'peers{identity_name="b"} 7.0' in text


def test_a_deleted_objects_series_go_and_the_others_stay() -> None:
    """A series labelled <kind>_namespace and <kind>_name describes that object: once it is deleted, it would
    otherwise be exported, and alerted on, until the operator restarts."""
    metrics = OperatorMetrics()
    for namespace, name, status, value in (
        ("ns", "a", "Out of sync", 2),
        ("ns", "a", "Synchronized", 1),
        ("ns", "b", "Out of sync", 3),
        ("other", "a", "Out of sync", 4),
    ):
        metrics.apply_user_metric(
            {
                "name": "peers_number",
                "description": "d",
                "labels": {"identity_namespace": namespace, "identity_name": name, "status": status},
                "gauge": {"set": value},
            }
        )
    metrics.apply_user_metric({"name": "unlabelled", "description": "d", "gauge": {"set": 1}})
    metrics.apply_user_metric(
        {"name": "pool_peers", "description": "d", "labels": {"swarmpool_namespace": "ns", "swarmpool_name": "a"},
         "gauge": {"set": 5}}
    )  # fmt: skip

    assert metrics.forget_object("Identity", "ns", "a") == 2

    def peers(namespace: str, name: str, status: str) -> float | None:
        return sample(metrics, "peers_number", identity_namespace=namespace, identity_name=name, status=status)

    assert peers("ns", "a", "Out of sync") is None and peers("ns", "a", "Synchronized") is None
    assert (peers("ns", "b", "Out of sync"), peers("other", "a", "Out of sync")) == (3, 4)
    assert sample(metrics, "pool_peers", swarmpool_namespace="ns", swarmpool_name="a") == 5, "another kind's"
    assert sample(metrics, "unlabelled") == 1
    # The object's runs may report it again (a new object of the same name).
    metrics.apply_user_metric(
        {"name": "peers_number", "description": "d", "gauge": {"set": 1},
         "labels": {"identity_namespace": "ns", "identity_name": "a", "status": "Synchronized"}}
    )  # fmt: skip
    assert peers("ns", "a", "Synchronized") == 1
    assert metrics.forget_object("Identity", "ns", "gone") == 0


def test_counters_histograms_and_summaries() -> None:
    metrics = OperatorMetrics()
    metrics.apply_user_metric({"name": "runs", "description": "d", "counter": {"increment": True}})
    metrics.apply_user_metric({"name": "runs", "description": "d", "counter": {"add": 2.5}})
    metrics.apply_user_metric({"name": "lat", "description": "d", "histogram": {"observe": 0.3}})
    metrics.apply_user_metric({"name": "size", "description": "d", "summary": {"observe": 3}})
    assert sample(metrics, "runs_total") == 3.5
    assert sample(metrics, "lat_count") == 1
    assert sample(metrics, "size_sum") == 3


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({"name": "m", "counter": {"add": -1}}, "cannot decrease", id="negative-counter"),
        pytest.param({"name": "m", "gauge": {}, "counter": {}}, "exactly one", id="two-types"),
        pytest.param({"name": "m"}, "exactly one", id="no-type"),
        pytest.param({"name": "bad name", "gauge": {}}, "not a valid Prometheus name", id="bad-name"),
        pytest.param({"name": "ansible_operator_x", "gauge": {}}, "reserved", id="reserved-prefix"),
        pytest.param({"name": "process_open_fds", "gauge": {}}, "reserved", id="reserved-process-prefix"),
        pytest.param({"name": "m", "labels": {"bad-label": "x"}, "gauge": {}}, "label name", id="bad-label"),
    ],
)
def test_bad_requests_are_refused(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MetricError, match=fragment):
        OperatorMetrics().apply_user_metric({"description": "d", **spec})


def test_a_metric_keeps_its_type_and_label_names() -> None:
    metrics = OperatorMetrics()
    metrics.apply_user_metric({"name": "m", "description": "d", "labels": {"a": "1"}, "gauge": {"set": 1}})
    with pytest.raises(MetricError, match="which is a gauge"):
        metrics.apply_user_metric({"name": "m", "description": "d", "labels": {"a": "1"}, "counter": {}})
    with pytest.raises(MetricError, match="has labels"):
        metrics.apply_user_metric({"name": "m", "description": "d", "labels": {"b": "1"}, "gauge": {"set": 1}})


class ReviewingKube:
    """Answers TokenReview and SubjectAccessReview like an API server with two known tokens."""

    def __init__(self) -> None:
        self.reviews = 0
        self.broken = False

    def token_review(self, token: str) -> Mapping[str, Any]:
        self.reviews += 1
        if self.broken:
            raise TemporaryKubeError("API server unreachable")
        users = {"reader-token": "system:serviceaccount:ops:reader", "other-token": "system:serviceaccount:ops:other"}
        if token not in users:
            return {"authenticated": False}
        return {"authenticated": True, "user": {"username": users[token], "groups": ["system:serviceaccounts"]}}

    def subject_access_review(self, *, user: str, path: str, verb: str, **_: Any) -> tuple[bool, str]:
        allowed = user.endswith(":reader") and path == "/metrics" and verb == "get"
        return allowed, "" if allowed else "no RBAC policy matched"


@pytest.mark.parametrize(
    ("header", "code"),
    [
        pytest.param(None, 401, id="anonymous"),
        pytest.param("Basic abc", 401, id="not-bearer"),
        pytest.param("Bearer forged", 401, id="unknown-token"),
        pytest.param("Bearer other-token", 403, id="not-authorized"),
        pytest.param("Bearer reader-token", 200, id="metrics-reader"),
    ],
)
def test_the_authorizer_answers(header: str | None, code: int) -> None:
    authorizer = Authorizer(ReviewingKube(), ttl=60)  # type: ignore[arg-type]
    assert authorizer.check(header)[0] == code


def test_review_results_are_cached_and_failures_are_not() -> None:
    kube = ReviewingKube()
    authorizer = Authorizer(kube, ttl=60)  # type: ignore[arg-type]
    for _ in range(5):
        assert authorizer.check("Bearer reader-token")[0] == 200
    assert kube.reviews == 1
    kube.broken = True
    assert authorizer.check("Bearer other")[0] == 503
    assert authorizer.check("Bearer other")[0] == 503
    assert kube.reviews == 3, "an unavailable review is asked again next time"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_https_endpoint_serves_only_authorized_callers() -> None:
    metrics = OperatorMetrics()
    server = MetricsServer(MetricsSettings(bind_address="127.0.0.1:0"), metrics, Authorizer(ReviewingKube(), ttl=60))  # type: ignore[arg-type]
    address = server.start()
    assert address is not None
    url = f"https://127.0.0.1:{address[1]}/metrics"
    try:
        assert _get(url)[0] == 401
        assert _get(url, "forged")[0] == 401
        code, body = _get(url, "other-token")
        assert code == 403 and "Forbidden" in body
        code, body = _get(url, "reader-token")
        assert code == 200 and "ansible_operator_build_info" in body
        assert _get(f"https://127.0.0.1:{address[1]}/other", "reader-token")[0] == 404
        with pytest.raises(OSError):
            urllib.request.urlopen(url.replace("https", "http"), timeout=5)
    finally:
        server.stop()


def test_plain_http_only_when_asked() -> None:
    server = MetricsServer(MetricsSettings(bind_address="127.0.0.1:0", secure=False), OperatorMetrics(), None)
    address = server.start()
    assert address is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/metrics", timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.stop()
    with pytest.raises(ValueError, match="needs an authorizer"):
        MetricsServer(MetricsSettings(secure=True), OperatorMetrics(), None)


def test_new_tokens_are_reviewed_at_a_bounded_rate_and_known_ones_still_pass() -> None:
    now = [0.0]
    kube = ReviewingKube()
    authorizer = Authorizer(kube, ttl=60, reviews_per_second=5, review_burst=3, clock=lambda: now[0])  # type: ignore[arg-type]
    assert authorizer.check("Bearer reader-token")[0] == 200
    answers = [authorizer.check(f"Bearer made-up-{n}")[0] for n in range(100)]
    assert answers[:2] == [401, 401] and set(answers[2:]) == {429}
    assert kube.reviews == 3, "a flood of made-up tokens costs the API server the burst, no more"
    assert authorizer.check("Bearer reader-token")[0] == 200  # cached: no review needed
    now[0] += 1.0
    assert authorizer.check("Bearer made-up-again")[0] == 401  # the bucket refilled


def test_connections_beyond_the_bound_are_closed_without_a_thread() -> None:
    server = MetricsServer(MetricsSettings(bind_address="127.0.0.1:0", secure=False), OperatorMetrics(), None)
    address = server.start()
    assert address is not None
    idle = []
    try:
        # Clients that connect and say nothing hold their threads until the handler's timeout.
        for _ in range(MAX_CONCURRENT_REQUESTS):
            idle.append(socket.create_connection(("127.0.0.1", address[1]), timeout=10))
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", address[1]), timeout=10) as extra:
            extra.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            assert extra.recv(100) == b"", "one connection too many was served"
        for conn in idle:
            conn.close()
        time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{address[1]}/metrics", timeout=10) as reply:
            assert reply.status == 200  # slots come back once the idle clients are gone
    finally:
        for conn in idle:
            conn.close()
        server.stop()
