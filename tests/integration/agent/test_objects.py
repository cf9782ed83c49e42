"""The protocol's Kubernetes (module_utils.kube.Resources) behaves the same through either client.

Modules reach Kubernetes through kubernetes.core's client (ResourceService),
the agent through the operator's own (KindObjects). peer_sync and swarm_access
run on both, so each call must answer alike: None for a missing object, False
for a delete of one already gone, AlreadyExistsError for a create that lost
the race, KubernetesError worded "Failed to <verb> <Kind> <namespace>/<name>"
for the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import (
    AlreadyExistsError,
    KubernetesError,
    Resources,
    ResourceService,
)
from cluster_discovery_agent.objects import SECRETS, KindObjects
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.settings import KubeSettings

from testbed.controlplane import ControlPlane

pytestmark = pytest.mark.integration


def through_kubernetes_core(control_plane: ControlPlane) -> Resources:
    client = get_api_client(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name)
    return ResourceService(client, "Secret", "v1")


def through_the_operators_client(control_plane: ControlPlane) -> Resources:
    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    return KindObjects(kube, SECRETS)


def secret(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"side": "test"}},
        "stringData": {"value": value},
    }


@pytest.mark.parametrize("make", [through_kubernetes_core, through_the_operators_client])
def test_both_clients_answer_every_call_of_the_protocol_alike(
    control_plane: ControlPlane, make: Callable[[ControlPlane], Resources]
) -> None:
    secrets = make(control_plane)
    namespace = control_plane.create_namespace("objects")
    assert secrets.kind == "Secret"
    assert secrets.get("absent", namespace) is None
    assert secrets.delete("absent", namespace) is False

    created = secrets.create(secret("one", namespace, "a"))
    assert created["metadata"]["name"] == "one"
    with pytest.raises(AlreadyExistsError, match=f"Failed to create Secret {namespace}/one"):
        secrets.create(secret("one", namespace, "b"))

    patched = secrets.patch("one", namespace, {"metadata": {"labels": {"patched": "yes"}}})
    assert patched["metadata"]["labels"] == {"side": "test", "patched": "yes"}
    assert [item["metadata"]["name"] for item in secrets.list(namespace, label_selector="patched=yes")] == ["one"]
    assert secrets.list(namespace, label_selector="patched=no") == []
    assert secrets.get("one", namespace)["data"] == {"value": "YQ=="}  # type: ignore[index]

    with pytest.raises(KubernetesError, match=f"Failed to patch Secret {namespace}/absent"):
        secrets.patch("absent", namespace, {"metadata": {"labels": {"x": "y"}}})
    with pytest.raises(KubernetesError) as refused:
        secrets.create(secret("Not A Name", namespace, "c"))
    assert "Not A Name" in str(refused.value) and "stringData" not in str(refused.value)

    assert secrets.delete("one", namespace) is True
