"""The agent's view of Kubernetes: a watched cache of Identities.

Watching is list-then-watch from the list's resourceVersion, restarted from a
fresh list when the server answers 410 Gone (versions expire) or the stream
ends; every request has a timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .channels import IdentityRef

log = logging.getLogger(__name__)

GROUP = "peerdiscovery.irt-saintexupery.com"
VERSION = "v1alpha1"
PLURAL = "identities"
REQUEST_TIMEOUT = 30
WATCH_TIMEOUT = 300


def ref_of(obj: dict[str, Any]) -> IdentityRef:
    metadata = obj.get("metadata") or {}
    return IdentityRef(namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")))


class Identities:
    """List and watch Identities in one namespace or all, keeping the latest of each."""

    def __init__(self, api: client.ApiClient, namespace: str | None) -> None:
        self._custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self._lock = threading.Lock()
        self._objects: dict[IdentityRef, dict[str, Any]] = {}

    def get(self, ref: IdentityRef) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(ref)

    def _list(self, **kwargs: Any) -> Any:
        if self.namespace:
            return self._custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **kwargs)
        return self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)

    def run(self, on_change: Callable[[IdentityRef, dict[str, Any] | None], None], stop: threading.Event) -> None:
        """Call ``on_change(ref, object or None when gone)`` for every change, until ``stop`` is set."""
        while not stop.is_set():
            try:
                listing = self._list(_request_timeout=REQUEST_TIMEOUT)
                current = {ref_of(item): item for item in listing.get("items", [])}
                with self._lock:
                    gone = set(self._objects) - set(current)
                    self._objects = dict(current)
                for ref in gone:
                    on_change(ref, None)
                for ref, item in current.items():
                    on_change(ref, item)
                stream = watch.Watch()
                for event in stream.stream(
                    self._list,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=WATCH_TIMEOUT,
                    allow_watch_bookmarks=True,
                    _request_timeout=WATCH_TIMEOUT + REQUEST_TIMEOUT,
                ):
                    if stop.is_set():
                        stream.stop()
                        break
                    kind, obj = event["type"], event["object"]
                    if kind == "ERROR":
                        break  # 410 Gone arrives as an ERROR event: list again
                    if kind not in ("ADDED", "MODIFIED", "DELETED"):
                        continue
                    ref = ref_of(obj)
                    with self._lock:
                        if kind == "DELETED":
                            self._objects.pop(ref, None)
                        else:
                            self._objects[ref] = obj
                    on_change(ref, None if kind == "DELETED" else obj)
            except ApiException as err:
                log.warning("watching Identities failed: %s %s; listing again", err.status, err.reason)
                stop.wait(2)
            except Exception as err:  # connection resets, timeouts: keep watching
                log.warning("watching Identities failed: %s; listing again", err)
                stop.wait(2)
