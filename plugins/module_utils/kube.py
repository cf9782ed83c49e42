# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes objects of one kind: what the protocol asks of Kubernetes, its implementation, its time format.

Private to the collection: may change without notice.

:class:`Resources` is all the protocol code (peer_sync, swarm_access, the
swarm key Secret) asks of Kubernetes, so the same rules run in modules and in
the agent: modules pass a :class:`ResourceService`, the agent an adapter over
the operator's own client (cluster_discovery_agent.objects.KindObjects).

:class:`ResourceService` is the only code in module_utils that calls the API
server. It goes through kubernetes.core's ``K8SClient`` (built by its
``get_api_client`` from the
module's auth options), which adds ``dryRun=All`` to writes in check mode, so
check mode is the server's own dry run. Every failure becomes a
KubernetesError worded as kubernetes.core words its own ("Failed to <verb>
<Kind> <namespace>/<name>: <the API server's message>"), never quoting a
request body (it may hold a Secret).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""A time as Kubernetes writes one in a status or an Event (metav1.Time: RFC 3339, UTC, to the second)."""


def utc_time(epoch_seconds: float) -> str:
    """``epoch_seconds`` the way Kubernetes writes a time."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime(TIME_FORMAT)


def utc_now() -> str:
    """The current time the way Kubernetes writes one."""
    return utc_time(time.time())


class KubernetesError(CollectionError):
    """The API server refused or could not be reached; the message quotes its reason."""


class AlreadyExistsError(KubernetesError):
    """A create found the object already there (another writer was faster)."""


def api_reason(err: Exception) -> str:
    """The API server's own message (kubernetes.core's wording), never the request body."""
    body = getattr(err, "body", None)
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError, TypeError):
            message = None
        if message:
            return str(message)
    status = getattr(err, "status", None)
    reason = getattr(err, "reason", None)
    if status is not None:
        return f"{status} {reason or ''}".strip()
    return f"{type(err).__name__}: {err}"


class Resources(Protocol):
    """Objects of one kind. Failures raise KubernetesError worded "Failed to <verb> <Kind> <namespace>/<name>: …"."""

    kind: str

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        """The object, or None when there is none."""

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """AlreadyExistsError when another writer was faster."""

    def patch(
        self, name: str, namespace: str, patch: dict[str, Any], *, content_type: str = "application/merge-patch+json"
    ) -> dict[str, Any]: ...

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge ``status`` through the status subresource."""

    def delete(self, name: str, namespace: str) -> bool:
        """False when it was already gone."""


class ResourceService:
    """Get, list, create, patch, patch the status of, and delete objects of one kind."""

    def __init__(self, client: Any, kind: str, api_version: str) -> None:
        self.client = client
        self.kind = kind
        try:
            self.resource = client.resource(kind, api_version)
        except Exception as err:  # discovery fails in many ways (network, TLS, auth, CRD not installed)
            raise KubernetesError(f"Failed to find the {kind} resource ({api_version}): {api_reason(err)}") from err

    def _fail(self, verb: str, namespace: str, name: str, err: Exception) -> KubernetesError:
        return KubernetesError(f"Failed to {verb} {self.kind} {namespace}/{name}: {api_reason(err)}")

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return dict(self.client.get(self.resource, name=name, namespace=namespace).to_dict())
        except NotFoundError:
            return None
        except Exception as err:
            raise self._fail("get", namespace, name, err) from err

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        try:
            found = self.client.get(self.resource, namespace=namespace, label_selector=label_selector)
        except Exception as err:
            raise KubernetesError(f"Failed to list {self.kind} in {namespace}: {api_reason(err)}") from err
        return [dict(item) for item in found.to_dict().get("items") or []]

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.dynamic.exceptions import ConflictError

        metadata = body["metadata"]
        try:
            return dict(self.client.create(self.resource, body).to_dict())
        except ConflictError as err:
            raise AlreadyExistsError(
                f"Failed to create {self.kind} {metadata['namespace']}/{metadata['name']}: {api_reason(err)}"
            ) from err
        except Exception as err:
            raise self._fail("create", metadata["namespace"], metadata["name"], err) from err

    def patch(
        self, name: str, namespace: str, patch: dict[str, Any], *, content_type: str = "application/merge-patch+json"
    ) -> dict[str, Any]:
        body = dict(patch)
        body["metadata"] = {**patch.get("metadata", {}), "name": name, "namespace": namespace}
        try:
            return dict(
                self.client.patch(
                    self.resource, body, name=name, namespace=namespace, content_type=content_type
                ).to_dict()
            )
        except Exception as err:
            raise self._fail("patch", namespace, name, err) from err

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        """Merge ``status`` through the status subresource (spec and metadata are untouched)."""
        body = {"metadata": {"name": name, "namespace": namespace}, "status": status}
        try:
            subresource = self.resource.subresources["status"]
            return dict(
                self.client.patch(
                    subresource, body, name=name, namespace=namespace, content_type="application/merge-patch+json"
                ).to_dict()
            )
        except Exception as err:
            raise self._fail("update the status of", namespace, name, err) from err

    def delete(self, name: str, namespace: str) -> bool:
        """Delete; False when it was already gone."""
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            self.client.delete(self.resource, name=name, namespace=namespace)
        except NotFoundError:
            return False
        except Exception as err:
            raise self._fail("delete", namespace, name, err) from err
        return True
