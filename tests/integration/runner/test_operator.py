"""The operator runner against a real API server: the issue's acceptance, end to end.

Each test starts the real ``cluster-discovery-operator`` console script (real
ansible-runner, real ansible-playbook, the kubernetes.core and collection
modules) against the test bed's control plane (real etcd, kube-apiserver and
kube-controller-manager on loopback; or ``$KUBECONFIG`` with
``--real-cluster``), watching a namespace of its own, with the test CRD and the
``widget`` role of tests/integration/runner/data. Covered:

- create -> role runs -> Successful condition, the ConfigMap it owns, the
  role's own status (k8s_status), its Event (k8s_event), its gauge on /metrics;
- spec update -> runs again; unchanged (status writes, relists) -> no ansible
  process, proven by the processes counter and the artifact folders;
- failure -> Failure condition with the task's message, backoff, a Warning
  Event; fixing the spec -> Successful;
- deletion -> finalizer role, then the object is gone; a failing finalizer
  keeps the object and says why;
- a change to an owned ConfigMap -> the owner is requeued and repairs it;
- a burst of objects shares ansible processes with exact per-object results;
- the watch survives a suspended operator, etcd compaction and a rebuilt watch
  cache without losing an event;
- SIGTERM: running reconciles finish, exit 0;
- leader election on a real Lease: one leads, the other takes over;
- /metrics: 401 anonymous, 403 unauthorized, 200 for a ServiceAccount bound to
  a metrics-reader ClusterRole (TokenReview + SubjectAccessReview).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from typing import Any

import pytest
from cluster_discovery_operator.running import RUN_MARKER

from tests.integration.runner.conftest import CRD_NAME, Cluster
from tests.integration.runner.operator_process import DATA, OperatorProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.real_cluster]

API_VERSION = "test.cluster-discovery.example.com/v1alpha1"
RUN_TIMEOUT = 180.0
RUNS = "cluster_discovery_operator_ansible_runs_total"


def widget(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    cluster.apply(
        {"apiVersion": API_VERSION, "kind": "Widget", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def conditions(cluster: Cluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    obj = cluster.get("widget", name, namespace) or {}
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


def condition_is(cluster: Cluster, namespace: str, name: str, kind: str, status: str) -> bool:
    return conditions(cluster, namespace, name).get(kind, {}).get("status") == status


def wait_condition(cluster: Cluster, op: OperatorProcess, namespace: str, name: str, kind: str, status: str) -> None:
    wait_for(
        lambda: condition_is(cluster, namespace, name, kind, status),
        timeout=RUN_TIMEOUT,
        what=f"widget {name}'s {kind} condition to be {status}",
        process=op,
    )


def runs(op: OperatorProcess) -> float:
    return op.metric(RUNS, group="test.cluster-discovery.example.com", kind="Widget") or 0.0


def wait_successful(cluster: Cluster, op: OperatorProcess, namespace: str, name: str, generation: int = 1) -> None:
    def done() -> bool:
        obj = cluster.get("widget", name, namespace) or {}
        status = obj.get("status") or {}
        by_type = {c["type"]: c for c in status.get("conditions", [])}
        return by_type.get("Successful", {}).get("status") == "True" and status.get("observedGeneration") == generation

    wait_for(done, timeout=RUN_TIMEOUT, what=f"widget {name} generation {generation} to be Successful", process=op)


def test_create_runs_the_role_and_reports_success(cluster: Cluster, namespace: str, operator: Any) -> None:
    op = operator(namespace, "--metrics-secure=false")
    widget(
        cluster,
        namespace,
        "w",
        message="first",
        sizeCount=3,
        IPFSVersion="0.43",
        gauge=7,
        eventMessage="made by the widget role",
    )
    wait_successful(cluster, op, namespace, "w")
    obj = cluster.get("widget", "w", namespace)
    assert obj is not None
    assert obj["metadata"]["finalizers"] == ["test.cluster-discovery.example.com/finalizer"]
    by_type = conditions(cluster, namespace, "w")
    assert by_type["Running"]["reason"] == "Successful"
    assert by_type["Running"]["message"] == "Awaiting next reconciliation"
    assert by_type["Running"]["ansibleResult"]["failures"] == 0
    assert by_type["Failure"]["status"] == "False"
    assert by_type["MessageSet"]["message"] == "first", "the role's own condition (k8s_status) is kept"
    assert obj["status"]["message"] == "first", "the role's own status field (k8s_status) is kept"
    data = cluster.get("configmap", "w-data", namespace)
    assert data is not None
    assert data["data"] == {"message": "first", "size": "3", "ipfs_version": "0.43", "host": "localhost"}
    (owner,) = data["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Widget", "w", obj["metadata"]["uid"])
    note = cluster.get("event", "w-note", namespace)
    assert (
        note is not None and note["reason"] == "WidgetNote" and note["involvedObject"]["uid"] == obj["metadata"]["uid"]
    )
    assert op.metric("widget_gauge", widget_name="w", widget_namespace=namespace) == 7.0
    assert runs(op) == 1.0


def test_spec_update_runs_again_and_an_unchanged_object_starts_no_ansible(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    op = operator(namespace, "--metrics-secure=false", "--watch-timeout=5s")
    widget(cluster, namespace, "w", message="first")
    wait_successful(cluster, op, namespace, "w")
    widget(cluster, namespace, "w", message="second")
    wait_successful(cluster, op, namespace, "w", generation=2)
    data = cluster.get("configmap", "w-data", namespace)
    assert data is not None and data["data"]["message"] == "second"
    processes, folders = runs(op), op.artifact_runs()
    assert (processes, folders) == (2.0, 2)
    skipped_before = (
        op.metric(
            "cluster_discovery_operator_runs_skipped_total", group="test.cluster-discovery.example.com", kind="Widget"
        )
        or 0.0
    )
    # Unchanged inputs: a status write by someone else, and two watch restarts (5 s timeout) with re-lists.
    cluster.kubectl(
        "patch",
        "widget",
        "w",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"note": "written by someone else"}}),
    )
    wait_for(
        lambda: (
            (
                op.metric(
                    "cluster_discovery_operator_watch_restarts_total",
                    group="test.cluster-discovery.example.com",
                    kind="Widget",
                    reason="ended",
                )
                or 0
            )
            >= 2
        ),
        timeout=60,
        what="two watch restarts",
        process=op,
    )
    skipped = (
        op.metric(
            "cluster_discovery_operator_runs_skipped_total", group="test.cluster-discovery.example.com", kind="Widget"
        )
        or 0.0
    )
    assert skipped > skipped_before, "the reconciles happened, and were skipped"
    assert (runs(op), op.artifact_runs()) == (processes, folders), "no ansible process was started"


def test_a_failure_reports_the_task_message_backs_off_and_emits_an_event(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    op = operator(namespace, "--metrics-secure=false", "--reconcile-backoff-base=2s", "--log-level=debug")
    widget(cluster, namespace, "w", failMessage="no room for widgets")
    wait_condition(cluster, op, namespace, "w", "Failure", "True")
    by_type = conditions(cluster, namespace, "w")
    assert by_type["Failure"]["reason"] == "Failed"
    assert by_type["Failure"]["message"] == "widget w refused: no room for widgets"
    assert by_type["Failure"]["ansibleResult"]["failures"] == 1
    assert by_type["Successful"]["status"] == "False"
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "-o", "json", "--field-selector", "involvedObject.name=w"
        ).stdout
    )["items"]
    failed = [e for e in events if e["reason"] == "ReconcileFailed"]
    assert failed and failed[0]["type"] == "Warning"
    assert failed[0]["message"] == "widget w refused: no room for widgets"
    wait_for(
        lambda: op.count(lambda e: e.get("msg") == "reconcile failed") >= 3,
        timeout=RUN_TIMEOUT,
        what="three failed attempts",
        process=op,
    )
    failed_lines = [e for e in op.logs() if e.get("msg") == "reconcile failed"][:3]
    assert [e["retry_in"] for e in failed_lines] == [2.0, 4.0, 8.0], "exponential backoff from --reconcile-backoff-base"
    # Issue 19: the same failure is logged once at error; its retries at debug, counted.
    assert [(e["level"], e["failures"]) for e in failed_lines] == [("error", 1), ("debug", 2), ("debug", 3)]
    widget(cluster, namespace, "w", failMessage="")
    wait_condition(cluster, op, namespace, "w", "Successful", "True")
    assert conditions(cluster, namespace, "w")["Failure"]["status"] == "False"


def test_deletion_runs_the_finalizer_then_the_object_is_gone(cluster: Cluster, namespace: str, operator: Any) -> None:
    op = operator(namespace, "--metrics-secure=false")
    widget(cluster, namespace, "w", message="bye", gauge=7)
    wait_successful(cluster, op, namespace, "w")
    assert op.metric("widget_gauge", widget_name="w", widget_namespace=namespace) == 7.0
    cluster.kubectl("delete", "widget", "w", "-n", namespace, "--wait=false")
    wait_for(
        lambda: cluster.get("widget", "w", namespace) is None, timeout=RUN_TIMEOUT, what="the widget to go", process=op
    )
    marker = cluster.get("configmap", "finalized-w", namespace)
    assert marker is not None and marker["data"] == {"finalized": "yes"}, "the finalizer role ran first"
    run = op.find(lambda e: e.get("msg") == "reconciling" and e.get("finalizer_run") is True)
    assert run is not None
    # The role's series of the widget go with it: an alert on them would otherwise never resolve.
    wait_for(
        lambda: op.metric("widget_gauge", widget_name="w", widget_namespace=namespace) is None,
        timeout=30,
        what="the deleted widget's gauge to go",
        process=op,
    )


def test_a_failing_finalizer_keeps_the_object_and_says_why(cluster: Cluster, namespace: str, operator: Any) -> None:
    op = operator(namespace, "--metrics-secure=false", "--reconcile-backoff-base=1s")
    widget(cluster, namespace, "w", finalizerFailMessage="still in use")
    wait_successful(cluster, op, namespace, "w")
    cluster.kubectl("delete", "widget", "w", "-n", namespace, "--wait=false")
    wait_condition(cluster, op, namespace, "w", "Failure", "True")
    obj = cluster.get("widget", "w", namespace)
    assert obj is not None and obj["metadata"].get("deletionTimestamp")
    assert conditions(cluster, namespace, "w")["Failure"]["message"] == "widget w cannot be cleaned up: still in use"
    reasons = cluster.kubectl("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert "FinalizerFailed" in reasons
    widget(cluster, namespace, "w", finalizerFailMessage="")
    wait_for(
        lambda: cluster.get("widget", "w", namespace) is None,
        timeout=RUN_TIMEOUT,
        what="the widget to go once its finalizer succeeds",
        process=op,
    )


def test_a_change_to_an_owned_configmap_requeues_its_owner(cluster: Cluster, namespace: str, operator: Any) -> None:
    op = operator(namespace, "--metrics-secure=false")
    widget(cluster, namespace, "w", message="kept")
    wait_successful(cluster, op, namespace, "w")
    wait_for(
        lambda: op.find(lambda e: e.get("msg") == "watching a dependent kind"),
        timeout=30,
        what="the ConfigMap watch",
        process=op,
    )
    before = runs(op)
    cluster.kubectl(
        "patch",
        "configmap",
        "w-data",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"data": {"message": "tampered"}}),
    )
    wait_for(
        lambda: (cluster.get("configmap", "w-data", namespace) or {}).get("data", {}).get("message") == "kept",
        timeout=RUN_TIMEOUT,
        what="the owner to repair its ConfigMap",
        process=op,
    )
    requeue = op.find(lambda e: e.get("msg") == "dependent changed; requeueing its owner")
    assert requeue is not None and requeue["dependent"] == "w-data"
    wait_for(lambda: runs(op) >= before + 1, timeout=30, what="the run to be counted", process=op)
    time.sleep(3)
    assert runs(op) == before + 1, "the repair's own write does not trigger another run"


def test_a_burst_of_objects_shares_processes_with_exact_results(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    op = operator(namespace, "--metrics-secure=false", "--max-concurrent-reconciles=1", "--batch-window=2s")
    names = [f"w{i}" for i in range(8)]
    for name in names:
        widget(cluster, namespace, name, message=f"hello {name}", failMessage="odd" if name == "w3" else "")
    for name in names:
        if name != "w3":
            wait_successful(cluster, op, namespace, name)
    wait_condition(cluster, op, namespace, "w3", "Failure", "True")
    assert conditions(cluster, namespace, "w3")["Failure"]["message"] == "widget w3 refused: odd"
    for name in names:
        if name != "w3":
            data = cluster.get("configmap", f"{name}-data", namespace)
            assert data is not None and data["data"]["message"] == f"hello {name}"
    shared = op.find(lambda e: e.get("msg") == "ansible run finished" and e.get("objects", 1) > 1)
    assert shared is not None, "at least one ansible-playbook process reconciled several widgets"
    assert cluster.get("configmap", "w3-data", namespace) is None


def test_the_watch_loses_no_event_across_a_suspension_compaction_and_a_rebuilt_cache(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    """SIGSTOP the operator; change, delete and create widgets; compact etcd; rebuild the watch cache; SIGCONT."""
    if cluster.etcd_url is None:
        pytest.skip("forcing compaction needs the test bed's etcd")
    op = operator(namespace, "--metrics-secure=false", watches=DATA / "watches-no-finalizer.yaml")
    for name in ("a", "b"):
        widget(cluster, namespace, name, message="one")
    for name in ("a", "b"):
        wait_successful(cluster, op, namespace, name)
    op.signal(signal.SIGSTOP)
    try:
        widget(cluster, namespace, "a", message="two")
        cluster.kubectl("delete", "widget", "b", "-n", namespace)
        widget(cluster, namespace, "c", message="new")
        compact(cluster)
        rebuild_watch_cache(cluster)
    finally:
        op.signal(signal.SIGCONT)
    wait_successful(cluster, op, namespace, "a", generation=2)
    wait_successful(cluster, op, namespace, "c")
    assert (cluster.get("configmap", "a-data", namespace) or {})["data"]["message"] == "two"
    assert (cluster.get("configmap", "c-data", namespace) or {})["data"]["message"] == "new"
    restarts = {
        reason: op.metric(
            "cluster_discovery_operator_watch_restarts_total",
            reason=reason,
            group="test.cluster-discovery.example.com",
            kind="Widget",
        )
        or 0
        for reason in ("gone", "ended", "error")
    }
    assert sum(restarts.values()) >= 1, f"the watch was restarted: {restarts}"


def compact(cluster: Cluster) -> None:
    """Compact etcd at its current revision (what production etcd does every five minutes)."""
    assert cluster.etcd_url is not None

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{cluster.etcd_url}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            result: dict[str, Any] = json.loads(reply.read())
        return result

    revision = int(post("/v3/kv/range", {"key": "Zm9v"})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": revision, "physical": True})


def rebuild_watch_cache(cluster: Cluster) -> None:
    """Changing the CRD makes the API server serve it from fresh storage, whose watch cache starts now."""
    column = {"name": f"C{time.time_ns()}", "type": "string", "jsonPath": ".spec.message"}
    cluster.kubectl(
        "patch",
        "crd",
        CRD_NAME,
        "--type=json",
        "-p",
        json.dumps([{"op": "add", "path": "/spec/versions/0/additionalPrinterColumns/-", "value": column}]),
    )
    time.sleep(2)


def test_sigterm_lets_the_running_reconcile_finish_and_exits_zero(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    op = operator(namespace, "--metrics-secure=false", "--graceful-shutdown-timeout=120s")
    widget(cluster, namespace, "w", message="slow", sleepSeconds=6)
    wait_for(lambda: op.find(lambda e: e.get("msg") == "reconciling"), timeout=60, what="the run to start", process=op)
    assert op.terminate(timeout=RUN_TIMEOUT) == 0
    stopped = op.find(lambda e: e.get("msg") == "stopped")
    assert stopped is not None and stopped["all_runs_finished"] is True
    assert condition_is(cluster, namespace, "w", "Successful", "True"), "the running reconcile finished"


def test_sigterm_after_the_grace_period_cancels_and_still_exits_zero(
    cluster: Cluster, namespace: str, operator: Any
) -> None:
    op = operator(namespace, "--metrics-secure=false", "--graceful-shutdown-timeout=1s")
    widget(cluster, namespace, "w", message="slow", sleepSeconds=120)
    wait_for(lambda: op.find(lambda e: e.get("msg") == "reconciling"), timeout=60, what="the run to start", process=op)
    time.sleep(2)
    began = time.monotonic()
    assert op.terminate(timeout=60) == 0
    assert time.monotonic() - began < 30, "the grace period bounds the shutdown"
    stopped = op.find(lambda e: e.get("msg") == "stopped")
    assert stopped is not None and stopped["all_runs_finished"] is False
    assert not condition_is(cluster, namespace, "w", "Successful", "True")
    assert _processes_of_runs_of(op.pid) == [], "the cancelled run's ansible workers were ended too"


def _processes_of_runs_of(operator_pid: int) -> list[int]:
    prefix = f"{RUN_MARKER}={operator_pid}/".encode()
    found = []
    for entry in os.scandir("/proc"):
        try:
            with open(os.path.join(entry.path, "environ"), "rb") as handle:
                if any(item.startswith(prefix) for item in handle.read().split(b"\0")):
                    found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def test_leader_election_on_a_real_lease(cluster: Cluster, namespace: str, operator: Any) -> None:
    lease_args = (
        "--metrics-secure=false",
        "--leader-elect",
        "--leader-election-id=widgets-lock",
        f"--leader-election-namespace={namespace}",
    )
    first = operator(namespace, *lease_args, name="first")
    wait_for(
        lambda: "leader" in first.readyz()[1] and "standby" not in first.readyz()[1],
        timeout=60,
        what="the first operator to lead",
        process=first,
    )
    second = operator(namespace, *lease_args, name="second")
    code, body = second.readyz()
    assert code == 200 and "standby" in body and "widgets-lock" in body
    lease = cluster.get("lease", "widgets-lock", namespace)
    assert lease is not None and lease["spec"]["leaseDurationSeconds"] == 15
    holder = lease["spec"]["holderIdentity"]
    assert first.find(lambda e: e.get("msg") == "became the leader" and e.get("identity") == holder)
    widget(cluster, namespace, "one", message="led by the first")
    wait_successful(cluster, first, namespace, "one")
    assert second.find(lambda e: e.get("msg") == "reconciling") is None, "the standby reconciles nothing"
    assert first.terminate() == 0
    wait_for(
        lambda: second.find(lambda e: e.get("msg") == "became the leader"),
        timeout=60,
        what="the second operator to take over",
        process=second,
    )
    lease = cluster.get("lease", "widgets-lock", namespace)
    assert lease is not None and lease["spec"]["holderIdentity"] != holder
    assert lease["spec"]["leaseTransitions"] >= 1
    widget(cluster, namespace, "two", message="led by the second")
    wait_successful(cluster, second, namespace, "two")


METRICS_READER = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "runner-test-metrics-reader"},
    "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
}


def test_metrics_need_a_token_bound_to_metrics_reader(cluster: Cluster, namespace: str, operator: Any) -> None:
    op = operator(namespace)
    cluster.apply(METRICS_READER)
    for account in ("reader", "stranger"):
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    cluster.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"runner-test-metrics-reader-{namespace}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": METRICS_READER["metadata"]["name"],
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        }
    )
    try:
        reader = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
        stranger = cluster.kubectl("create", "token", "stranger", "-n", namespace).stdout.strip()
        assert op.scrape()[0] == 401
        assert op.scrape("not-a-token")[0] == 401
        code, body = op.scrape(stranger)
        assert code == 403 and f"system:serviceaccount:{namespace}:stranger" in body

        def reader_allowed() -> bool:
            return op.scrape(reader)[0] == 200  # RBAC caches converge within a second or two

        wait_for(reader_allowed, timeout=30, what="the metrics-reader token to be allowed", process=op)
        code, body = op.scrape(reader)
        assert "ansible_operator_build_info" in body and "cluster_discovery_operator_queue_depth" in body
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"runner-test-metrics-reader-{namespace}", check=False)


def test_an_unserved_kind_stops_the_operator_with_a_clear_error(
    cluster: Cluster, namespace: str, operator: Any, tmp_path: Any
) -> None:
    watches = tmp_path / "watches.yaml"
    watches.write_text(
        f"- {{version: v1alpha1, group: test.cluster-discovery.example.com, kind: Gadget, "
        f"role: {DATA / 'roles' / 'widget'}}}\n"
    )
    op = operator(namespace, watches=watches, wait_ready=False)
    assert op.proc is not None and op.proc.wait(60) == 1
    error = op.find(lambda e: e.get("level") == "error")
    assert error is not None and "Gadget" in error["error"] and "is its CRD installed" in error["error"]
    assert "Traceback" not in op.log_path.read_text()
