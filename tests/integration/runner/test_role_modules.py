"""k8s_status, k8s_event, requeue_after and osdk_metric in a real playbook against a real API server.

Runs ansible-playbook (through ansible-runner, connection local) on the test
bed's control plane, or ``$KUBECONFIG`` with ``--real-cluster``. Covered:
k8s_status writes through the status subresource and merges conditions by
type (the operator's condition types survive), reports no change when what it
is given is already set, honours check mode, and behaves the same when it runs
as an action on the controller (the default for local connections) and as a
module process (forced here with the task's ``environment``); k8s_event
creates an Event about the object and counts a repeat; requeue_after and
osdk_metric return what the operator reads, fail with a clear ``msg`` on a bad
request, and osdk_metric given an ``address`` posts the metric there.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from testbed.collection import activate
from tests.integration.runner.conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.real_cluster]

API_VERSION = "test.cluster-discovery.example.com/v1alpha1"


def play(
    cluster: Cluster, tmp_path: Path, tasks: list[dict[str, Any]], *, check: bool = False
) -> dict[str, dict[str, Any]]:
    """Run ``tasks`` on localhost; return each named task's result."""
    collections = activate()
    results: dict[str, dict[str, Any]] = {}

    def keep(event: dict[str, Any]) -> bool:
        if event.get("event") in ("runner_on_ok", "runner_on_failed"):
            data = event["event_data"]
            results[data["task"]] = {**data["res"], "failed": event["event"] == "runner_on_failed"}
        return True

    (tmp_path / "pdd").mkdir(exist_ok=True)
    runner = ansible_runner.run(
        private_data_dir=os.fspath(tmp_path / "pdd"),
        playbook=[{"hosts": "localhost", "gather_facts": False, "tasks": tasks}],
        inventory={
            "all": {
                "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}
            }
        },
        envvars={
            "ANSIBLE_COLLECTIONS_PATH": os.fspath(collections),
            "K8S_AUTH_KUBECONFIG": os.fspath(cluster.kubeconfig),
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        },
        cmdline="--check" if check else None,
        quiet=True,
        event_handler=keep,
        cancel_callback=lambda: False,
    )
    assert runner.status in ("successful", "failed"), runner.stdout.read()
    return results


def status_task(name: str, namespace: str, **options: Any) -> dict[str, Any]:
    return {
        "name": name,
        "peerdiscovery.cluster_discovery.k8s_status": {
            "api_version": API_VERSION,
            "kind": "Widget",
            "name": "w",
            "namespace": namespace,
            **options,
        },
    }


@pytest.mark.parametrize(
    "path", [pytest.param("action", id="action-on-controller"), pytest.param("module", id="module-process")]
)
def test_k8s_status_merges_by_type_and_reports_no_change_on_a_subset(
    cluster: Cluster, namespace: str, tmp_path: Path, path: str
) -> None:
    cluster.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "Widget",
            "metadata": {"name": "w", "namespace": namespace},
            "spec": {"message": "m"},
        }
    )
    operator_conditions = [
        {
            "type": "Successful",
            "status": "True",
            "reason": "Successful",
            "message": "ok",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
    cluster.kubectl(
        "patch",
        "widget",
        "w",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": operator_conditions}}),
    )
    extra: dict[str, Any] = {"environment": {"CDO_FORCE_MODULE": "1"}} if path == "module" else {}
    ready = {"type": "NodeReady", "status": "True", "reason": "Up", "message": "node answers"}
    tasks = [
        {**status_task("first write", namespace, status={"peers": 2}, conditions=[ready]), **extra},
        {**status_task("same again", namespace, status={"peers": 2}, conditions=[ready]), **extra},
        {**status_task("subset", namespace, conditions=[{"type": "NodeReady", "status": "True"}]), **extra},
    ]
    results = play(cluster, tmp_path, tasks)
    assert results["first write"]["changed"] is True, results["first write"]
    assert "invocation" in results["first write"] if path == "module" else "invocation" not in results["first write"]
    assert results["same again"]["changed"] is False
    assert results["subset"]["changed"] is False
    status = (cluster.get("widget", "w", namespace) or {})["status"]
    assert status["peers"] == 2
    by_type = {c["type"]: c for c in status["conditions"]}
    assert by_type["Successful"] == operator_conditions[0], "the operator's condition survives"
    assert by_type["NodeReady"]["message"] == "node answers" and by_type["NodeReady"]["lastTransitionTime"]

    checked = play(
        cluster, tmp_path, [{**status_task("check only", namespace, status={"peers": 3}), **extra}], check=True
    )
    assert checked["check only"]["changed"] is True
    assert (cluster.get("widget", "w", namespace) or {})["status"]["peers"] == 2, "check mode writes nothing"


def test_k8s_status_fails_clearly(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    results = play(
        cluster,
        tmp_path,
        [
            status_task("missing object", namespace, status={"a": 1}) | {"ignore_errors": True},
            status_task("bad condition", namespace, conditions=[{"type": "X", "status": "Maybe"}])
            | {"ignore_errors": True},
        ],
    )
    assert results["missing object"]["failed"] and "Failed to get Widget" in results["missing object"]["msg"]
    assert results["bad condition"]["failed"] and "must be one of" in results["bad condition"]["msg"]


def test_k8s_event_records_and_counts(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.apply(
        {"apiVersion": API_VERSION, "kind": "Widget", "metadata": {"name": "w", "namespace": namespace}, "spec": {}}
    )
    event = {
        "name": "w-joined",
        "namespace": namespace,
        "reason": "SwarmJoined",
        "message": "joined",
        "type": "Normal",
        "involvedObject": {"apiVersion": API_VERSION, "kind": "Widget", "name": "w"},
    }
    results = play(
        cluster,
        tmp_path,
        [
            {"name": "once", "peerdiscovery.cluster_discovery.k8s_event": event},
            {"name": "twice", "peerdiscovery.cluster_discovery.k8s_event": event},
            {"name": "directive", "peerdiscovery.cluster_discovery.requeue_after": {"time": "90s"}},
            {
                "name": "metric",
                "peerdiscovery.cluster_discovery.osdk_metric": {
                    "name": "m",
                    "description": "d",
                    "labels": {"widget": "w"},
                    "gauge": {"set": 0},
                },
            },
        ],
    )
    assert results["twice"]["result"]["count"] == 2
    stored = cluster.get("event", "w-joined", namespace)
    widget = cluster.get("widget", "w", namespace)
    assert stored is not None and widget is not None
    assert (stored["count"], stored["reason"], stored["involvedObject"]["uid"]) == (
        2,
        "SwarmJoined",
        widget["metadata"]["uid"],
    )
    assert (results["directive"]["period"], results["directive"]["seconds"]) == ("90s", 90.0)
    assert results["metric"]["metric"] == {
        "name": "m",
        "description": "d",
        "labels": {"widget": "w"},
        "gauge": {"set": 0.0},
    }


def test_osdk_metric_with_an_address_posts_from_the_module_and_bad_requests_fail_clearly(
    cluster: Cluster, tmp_path: Path
) -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        metric = {"name": "m", "description": "d", "counter": {"increment": True}}
        address = f"http://127.0.0.1:{server.server_port}/metrics"
        results = play(
            cluster,
            tmp_path,
            [
                {"name": "posted", "peerdiscovery.cluster_discovery.osdk_metric": {**metric, "address": address}},
                {
                    "name": "bad metric",
                    "peerdiscovery.cluster_discovery.osdk_metric": {"name": "m", "description": "d"},
                    "ignore_errors": True,
                },
                {
                    "name": "bad time",
                    "peerdiscovery.cluster_discovery.requeue_after": {"time": "soon"},
                    "ignore_errors": True,
                },
            ],
        )
    finally:
        server.shutdown()
        server.server_close()
    assert results["posted"]["failed"] is False, results["posted"].get("msg")
    assert results["posted"]["changed"] is True
    assert received == [("/metrics", {"name": "m", "description": "d", "counter": {"increment": True}})]
    assert results["bad metric"]["failed"] is True
    assert "counter, gauge, histogram or summary" in results["bad metric"]["msg"]
    assert results["bad time"]["failed"] is True
    assert results["bad time"]["msg"].startswith("time must be a duration such as 30s")
