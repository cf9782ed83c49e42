"""The protocol's view of Kubernetes (module_utils.kube.Resources) over the operator's client.

The protocol code the agent runs (peer_sync, swarm_access) asks Kubernetes through
``Resources``; in modules that is kubernetes.core's client, here it is the
operator's own :class:`KubeClient`, so the agent has one client, one
connection pool and one configuration for everything it does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    GROUP,
    VERSION,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import (
    AlreadyExistsError,
    KubernetesError,
)
from cluster_discovery_operator.kube import ConflictError, KubeClient, KubeError, NotFoundError, Resource

# The product's CRDs are its own: no discovery round trip, and no failure when they come later.
SECRETS = Resource(group="", version="v1", kind="Secret", plural="secrets", namespaced=True)
PEERS = Resource(group=GROUP, version=VERSION, kind="Peer", plural="peers", namespaced=True, has_status=True)
SWARM_POOLS = Resource(
    group=GROUP, version=VERSION, kind="SwarmPool", plural="swarmpools", namespaced=True, has_status=True
)
IDENTITIES = Resource(
    group=GROUP, version=VERSION, kind="Identity", plural="identities", namespaced=True, has_status=True
)


@contextmanager
def _as_protocol_errors() -> Iterator[None]:
    """The operator's client errors as the protocol's: its messages already read "Failed to <verb> <Kind> …"."""
    try:
        yield
    except KubeError as err:
        raise KubernetesError(str(err)) from err


class KindObjects:
    """Objects of one kind through the operator's client; its errors become the protocol's KubernetesError."""

    def __init__(self, kube: KubeClient, resource: Resource) -> None:
        self.kube = kube
        self.resource = resource
        self.kind = resource.kind

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        with _as_protocol_errors():
            try:
                return dict(self.kube.get(self.resource, namespace=namespace, name=name))
            except NotFoundError:
                return None

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        with _as_protocol_errors():
            items, _ = self.kube.list_objects(self.resource, namespace=namespace, label_selector=label_selector)
        return [dict(item) for item in items]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        with _as_protocol_errors():
            try:
                return dict(self.kube.create(self.resource, namespace=namespace, body=body))
            except ConflictError as err:  # another writer was faster
                raise AlreadyExistsError(str(err)) from err

    def patch(
        self, name: str, namespace: str, patch: dict[str, Any], *, content_type: str = "application/merge-patch+json"
    ) -> dict[str, Any]:
        with _as_protocol_errors():
            return dict(
                self.kube.patch(self.resource, namespace=namespace, name=name, body=patch, patch_type=content_type)
            )

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        with _as_protocol_errors():
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

    def delete(self, name: str, namespace: str) -> bool:
        with _as_protocol_errors():
            try:
                self.kube.delete(self.resource, namespace=namespace, name=name)
            except NotFoundError:
                return False
        return True
