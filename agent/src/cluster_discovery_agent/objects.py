"""The protocol's view of Kubernetes (module_utils.kube.Resources) over the operator's client.

The protocol code the agent runs (peer_sync, swarm_access) asks Kubernetes through
``Resources``; in modules that is kubernetes.core's client, here it is the
operator's own :class:`KubeClient`, so the agent has one client, one
connection pool and one configuration for everything it does.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    GROUP,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import (
    AlreadyExistsError,
    KubernetesError,
)
from cluster_discovery_operator.kube import ConflictError, KubeClient, KubeError, NotFoundError, Resource

SECRETS = Resource(group="", version="v1", kind="Secret", plural="secrets", namespaced=True)
PEERS = Resource(group=GROUP, version="v1alpha1", kind="Peer", plural="peers", namespaced=True, has_status=True)
SWARM_POOLS = Resource(
    group=GROUP, version="v1alpha1", kind="SwarmPool", plural="swarmpools", namespaced=True, has_status=True
)


class KindObjects:
    """Objects of one kind through the operator's client; its errors become the protocol's KubernetesError."""

    def __init__(self, kube: KubeClient, resource: Resource) -> None:
        self.kube = kube
        self.resource = resource
        self.kind = resource.kind

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        try:
            return dict(self.kube.get(self.resource, namespace=namespace, name=name))
        except NotFoundError:
            return None
        except KubeError as err:
            raise KubernetesError(str(err)) from err

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        try:
            items, _ = self.kube.list_objects(self.resource, namespace=namespace, label_selector=label_selector)
        except KubeError as err:
            raise KubernetesError(str(err)) from err
        return [dict(item) for item in items]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        try:
            return dict(self.kube.create(self.resource, namespace=namespace, body=body))
        except ConflictError as err:
            raise AlreadyExistsError(str(err)) from err
        except KubeError as err:
            raise KubernetesError(str(err)) from err

    def patch(
        self, name: str, namespace: str, patch: dict[str, Any], *, content_type: str = "application/merge-patch+json"
    ) -> dict[str, Any]:
        try:
            return dict(
                self.kube.patch(self.resource, namespace=namespace, name=name, body=patch, patch_type=content_type)
            )
        except KubeError as err:
            raise KubernetesError(str(err)) from err

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        try:
            return dict(
                self.kube.patch(
                    self.resource,
                    namespace=namespace,
                    name=name,
                    body={"status": status},
                    subresource="status",
                    what="update the status of",
                )
            )
        except KubeError as err:
            raise KubernetesError(str(err)) from err

    def delete(self, name: str, namespace: str) -> bool:
        try:
            self.kube.delete(self.resource, namespace=namespace, name=name)
        except NotFoundError:
            return False
        except KubeError as err:
            raise KubernetesError(str(err)) from err
        return True
