"""The test bed's control plane is a real Kubernetes API: acceptance tests of issue 7.

Covered, against real etcd + kube-apiserver + kube-controller-manager built by
testbed/build.py: CRDs become served and their schemas are enforced by the API
server, printer columns reach kubectl, watches deliver every event type,
TokenRequest tokens are authorised by RBAC exactly, the garbage collector and
the namespace controller do their work, control planes are independent, and
etcd compaction reaches clients as 410 Gone. Not covered here: kubo pods (see
test_testbed_kubelet.py).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.watch
import pytest
import requests
import yaml
from kubernetes.client.exceptions import ApiException

from testbed.controlplane import ControlPlane
from testbed.procs import wait_for

pytestmark = pytest.mark.integration


def crd_manifest(group: str) -> dict[str, Any]:
    """A namespaced Widget CRD with a schema and printer columns, in its own API group."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Colour", "type": "string", "jsonPath": ".spec.colour"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {
                                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                        "colour": {"type": "string", "enum": ["red", "blue"]},
                                    },
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def widget_group(control_plane: ControlPlane) -> Iterator[str]:
    """A Widget CRD applied with kubectl in a fresh API group, Established before the test starts."""
    group = f"w{secrets.token_hex(3)}.testbed.example.com"
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    control_plane.wait_established(f"widgets.{group}")
    yield group
    control_plane.kubectl("delete", f"crd/widgets.{group}", "--wait=false")


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = control_plane.create_namespace()
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


def widget(name: str, group: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_a_crd_applied_with_kubectl_becomes_established_and_served(control_plane: ControlPlane, widget_group: str):
    crd = json.loads(control_plane.kubectl("get", f"crd/widgets.{widget_group}", "-o", "json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"

    resources = control_plane.kubectl("api-resources", f"--api-group={widget_group}", "-o", "name").stdout.split()
    assert resources == [f"widgets.{widget_group}"]


def test_waiting_for_a_crd_waits_until_the_api_server_says_it_is_established(control_plane: ControlPlane) -> None:
    """The CRD is created while the wait runs: it does not fail at once, as kubectl wait does, and returns once
    the CRD's Established condition is True; a CRD that never comes is named in the timeout's error."""
    group = f"w{secrets.token_hex(3)}.testbed.example.com"
    manifest = yaml.safe_dump(crd_manifest(group))
    creator = threading.Timer(1.0, lambda: control_plane.kubectl("apply", "-f", "-", input=manifest))
    creator.start()
    try:
        control_plane.wait_established(f"widgets.{group}", timeout=60)
        crd = json.loads(control_plane.kubectl("get", "crd", f"widgets.{group}", "-o", "json").stdout)
        assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    finally:
        creator.join()
        control_plane.kubectl("delete", f"crd/widgets.{group}", "--wait=false", check=False)
    with pytest.raises(TimeoutError, match=re.escape("widgets.nowhere.testbed.example.com")):
        control_plane.wait_established("widgets.nowhere.testbed.example.com", timeout=1)


def test_a_custom_resource_valid_against_its_schema_is_accepted(
    control_plane: ControlPlane, widget_group: str, namespace: str
):
    with control_plane.api_client() as client:
        api = kubernetes.client.CustomObjectsApi(client)
        api.create_namespaced_custom_object(
            widget_group, "v1", namespace, "widgets", widget("good", widget_group, size=3, colour="red")
        )
        stored = api.get_namespaced_custom_object(widget_group, "v1", namespace, "widgets", "good")
    assert stored["spec"] == {"size": 3, "colour": "red"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"size": 11}, "spec.size", id="size-above-maximum"),
        pytest.param({"size": "three"}, "spec.size", id="size-not-an-integer"),
        pytest.param({"colour": "red"}, "spec.size", id="required-size-missing"),
        pytest.param({"size": 2, "colour": "green"}, "spec.colour", id="colour-not-in-enum"),
    ],
)
def test_a_custom_resource_invalid_against_its_schema_is_rejected_by_the_api_server_with_422(
    control_plane: ControlPlane, widget_group: str, namespace: str, spec: dict[str, Any], field: str
):
    with control_plane.api_client() as client:
        api = kubernetes.client.CustomObjectsApi(client)
        with pytest.raises(ApiException) as caught:
            api.create_namespaced_custom_object(
                widget_group, "v1", namespace, "widgets", widget("bad", widget_group, **spec)
            )
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert status["reason"] == "Invalid"
    assert field in {cause["field"] for cause in status["details"]["causes"]}


def test_printer_columns_show_in_kubectl_get(control_plane: ControlPlane, widget_group: str, namespace: str):
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(widget("shown", widget_group, size=7, colour="blue"))
    )
    lines = control_plane.kubectl("get", f"widgets.{widget_group}", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "COLOUR"]
    assert lines[1].split()[:3] == ["shown", "7", "blue"]


def read_and_print_in_a_still_moment(
    control_plane: ControlPlane, kind: str, name: str | None, namespace: str | None
) -> tuple[dict[str, Any] | None, subprocess.CompletedProcess[str]]:
    """ControlPlane.read and ``kubectl get -o json`` of one thing, at a moment when it did not change.

    A list across namespaces changes under the test while the namespaces of earlier tests finish deleting and new
    ones get their kube-root-ca.crt; two equal reads around the kubectl call show that it saw the same objects.
    """
    args = ["get", kind, *([name] if name else []), "-o", "json", *(["-n", namespace] if namespace else ["-A"])]
    for _ in range(20):
        before = control_plane.read(kind, name, namespace=namespace)
        printed = control_plane.kubectl(*args, check=False)
        if control_plane.read(kind, name, namespace=namespace) == before:
            return before, printed
        time.sleep(0.5)
    raise AssertionError(f"{kind} {name} in {namespace} kept changing for 20 reads")


def test_read_prints_what_kubectl_get_o_json_prints_for_every_spelling_of_a_kind(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The tests poll with ControlPlane.read instead of a kubectl process: it must read exactly what kubectl does."""
    control_plane.kubectl("create", "configmap", "shown", "-n", namespace, "--from-literal=colour=blue")
    control_plane.read("configmap", "shown", namespace=namespace)  # discovery now, before the CRD below exists
    group = f"w{secrets.token_hex(3)}.testbed.example.com"
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    control_plane.wait_established(f"widgets.{group}")
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(widget("w", group, size=3)))
    try:
        for kind, name, in_namespace in [
            ("configmap", "shown", namespace),
            ("ConfigMap", None, namespace),
            ("cm", None, None),
            ("configmaps", "missing", namespace),
            ("ns", namespace, None),
            ("serviceaccount", "default", namespace),
            ("statefulsets.apps", None, namespace),
            ("events", None, namespace),
            ("widget", "w", namespace),  # served since the reader's first discovery
            (f"widgets.{group}", None, None),
        ]:
            read, printed = read_and_print_in_a_still_moment(control_plane, kind, name, in_namespace)
            if printed.returncode != 0:
                assert "NotFound" in printed.stderr and read is None, (kind, name, printed.stderr)
            else:
                assert read == json.loads(printed.stdout), (kind, name)
        with pytest.raises(LookupError, match="no-such-kind"):
            control_plane.read("no-such-kind")
    finally:
        control_plane.kubectl("delete", f"crd/widgets.{group}", "--wait=false")


def test_a_watch_delivers_added_modified_and_deleted(control_plane: ControlPlane, widget_group: str, namespace: str):
    seen: list[tuple[str, int | None]] = []
    started = threading.Event()

    def watch() -> None:
        with control_plane.api_client() as client:
            api = kubernetes.client.CustomObjectsApi(client)
            stream = kubernetes.watch.Watch()
            started.set()
            for event in stream.stream(
                api.list_namespaced_custom_object, widget_group, "v1", namespace, "widgets", timeout_seconds=30
            ):
                obj = event["object"]
                seen.append((event["type"], obj.get("spec", {}).get("size")))
                if event["type"] == "DELETED":
                    stream.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started.wait(10)
    time.sleep(0.5)  # the watch request must reach the server before the first write
    with control_plane.api_client() as client:
        api = kubernetes.client.CustomObjectsApi(client)
        api.create_namespaced_custom_object(widget_group, "v1", namespace, "widgets", widget("w", widget_group, size=1))
        api.patch_namespaced_custom_object(widget_group, "v1", namespace, "widgets", "w", {"spec": {"size": 2}})
        api.delete_namespaced_custom_object(widget_group, "v1", namespace, "widgets", "w")
    watcher.join(30)
    assert seen == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 2)]


def test_a_service_account_token_can_do_exactly_what_its_role_allows_and_gets_403_elsewhere(
    control_plane: ControlPlane, namespace: str
):
    other = control_plane.create_namespace("elsewhere")
    with control_plane.api_client() as admin_client:
        core = kubernetes.client.CoreV1Api(admin_client)
        rbac = kubernetes.client.RbacAuthorizationV1Api(admin_client)
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "configmap-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader-reads-configmaps"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "visible"}, "data": {"k": "v"}})
        token = core.create_namespaced_service_account_token(
            "reader", namespace, {"spec": {"expirationSeconds": 600}}
        ).status.token

    configuration = kubernetes.client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(configuration) as token_client:
        core = kubernetes.client.CoreV1Api(token_client)
        review = kubernetes.client.AuthenticationV1Api(token_client).create_self_subject_review({})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:reader"

        names = [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]
        assert "visible" in names
        assert core.read_namespaced_config_map("visible", namespace).data == {"k": "v"}

        forbidden = {
            "create a configmap in its namespace": lambda: core.create_namespaced_config_map(
                namespace, {"metadata": {"name": "nope"}}
            ),
            "list secrets in its namespace": lambda: core.list_namespaced_secret(namespace),
            "list configmaps in another namespace": lambda: core.list_namespaced_config_map(other),
            "list namespaces": lambda: core.list_namespace(),
        }
        for what, attempt in forbidden.items():
            with pytest.raises(ApiException) as caught:
                attempt()
            assert caught.value.status == 403, what
    control_plane.kubectl("delete", "namespace", other, "--wait=false")


def test_deleting_an_owner_garbage_collects_its_dependents(control_plane: ControlPlane, namespace: str):
    with control_plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
        reference = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
        for index in range(3):
            core.create_namespaced_config_map(
                namespace, {"metadata": {"name": f"dependent-{index}", "ownerReferences": [reference]}}
            )
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "independent"}})

        core.delete_namespaced_config_map("owner", namespace)

        def dependents_left() -> list[str]:
            return [cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items]

        wait_for(lambda: not any(n.startswith("dependent-") for n in dependents_left()), timeout=60, what="GC")
        assert "independent" in dependents_left()


def test_deleting_a_namespace_removes_it_and_what_it_held(control_plane: ControlPlane):
    name = control_plane.create_namespace("doomed")
    with control_plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map(name, {"metadata": {"name": "inside"}})
        core.create_namespaced_secret(name, {"metadata": {"name": "inside"}, "stringData": {"a": "b"}})
        core.delete_namespace(name)

        def gone() -> bool:
            try:
                core.read_namespace(name)
            except ApiException as err:
                return err.status == 404
            return False

        wait_for(gone, timeout=60, what=f"namespace {name} to be deleted")


def test_two_control_planes_are_independent_clusters(
    control_plane: ControlPlane, control_plane_factory: Any, namespace: str
):
    other = control_plane_factory(f"independent-{secrets.token_hex(2)}")
    assert other.server != control_plane.server
    assert other.ca_file.read_bytes() != control_plane.ca_file.read_bytes()
    names = other.kubectl("get", "namespaces", "-o", "name").stdout.split()
    assert f"namespace/{namespace}" not in names
    assert "namespace/default" in names
    # The other cluster's CA did not sign this API server's certificate.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{control_plane.server}/readyz", verify=str(other.ca_file), timeout=10)
    other.stop()


def test_a_forced_etcd_compaction_expires_older_resource_versions_with_410_gone(
    control_plane: ControlPlane, namespace: str
):
    with control_plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        old = core.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}}).metadata.resource_version
        # Two later writes: a watch from `old` resumes at old+1, which must lie below the compacted revision.
        for name in ("after-1", "after-2"):
            core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})

        key = base64.b64encode(b"/").decode()
        header = requests.post(f"{control_plane.etcd_url}/v3/kv/range", json={"key": key}, timeout=10).json()["header"]
        reply = requests.post(
            f"{control_plane.etcd_url}/v3/kv/compaction",
            json={"revision": header["revision"], "physical": True},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text

        with pytest.raises(ApiException) as listed:
            core.list_namespaced_config_map(namespace, resource_version=old, resource_version_match="Exact")
        with pytest.raises(ApiException) as watched:
            for _ in kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, namespace, resource_version=old, timeout_seconds=5
            ):
                pass
    assert listed.value.status == 410
    assert watched.value.status == 410
    assert "too old" in watched.value.reason
