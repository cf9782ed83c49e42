"""The agent's view of Kubernetes: watched caches of the product's kinds, and status patches.

Watching is list-then-watch from the list's resourceVersion, restarted from a
fresh list when the server answers 410 Gone (versions expire) or the stream
ends; every request has a timeout. One :class:`Watched` class serves every
kind the agent follows (Identities for the fast path, SwarmPools for their
nodes' counters), so both recover from the same failures the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

GROUP = "peerdiscovery.irt-saintexupery.com"
VERSION = "v1alpha1"
REQUEST_TIMEOUT = 30
WATCH_TIMEOUT = 300


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A namespaced object of a watched kind."""

    namespace: str
    name: str


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    metadata = obj.get("metadata") or {}
    return ObjectRef(namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")))


class Watched:
    """List and watch one kind of the group in some namespaces or all, keeping the latest of each object.

    ``namespaces`` as operator-sdk reads ``WATCH_NAMESPACE``: empty means every namespace; each named
    namespace gets its own list and watch (a user allowed in those namespaces may not list cluster-wide).
    """

    def __init__(self, api: client.ApiClient, namespaces: Sequence[str] = (), *, plural: str) -> None:
        self._custom = client.CustomObjectsApi(api)
        self.namespaces = tuple(dict.fromkeys(namespaces))
        self.plural = plural
        self._lock = threading.Lock()
        self._objects: dict[ObjectRef, dict[str, Any]] = {}

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get(ref)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every object known now (the latest version of each), in a stable order."""
        with self._lock:
            return [self._objects[ref] for ref in sorted(self._objects)]

    def _lister(self, namespace: str | None) -> Callable[..., Any]:
        def list_objects(**kwargs: Any) -> Any:
            if namespace is not None:
                return self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, self.plural, **kwargs)
            return self._custom.list_cluster_custom_object(GROUP, VERSION, self.plural, **kwargs)

        return list_objects

    def run(
        self,
        on_change: Callable[[ObjectRef, dict[str, Any] | None], None] | None,
        stop: threading.Event,
    ) -> None:
        """Keep the cache and call ``on_change(ref, object or None when gone)`` for every change, until ``stop``."""
        notify = on_change or (lambda ref, obj: None)
        if len(self.namespaces) <= 1:
            self._watch(self.namespaces[0] if self.namespaces else None, notify, stop)
            return
        threads = [
            threading.Thread(
                target=self._watch,
                args=(namespace, notify, stop),
                name=f"watch {self.plural} in {namespace}",
                daemon=True,
            )
            for namespace in self.namespaces
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _watch(
        self,
        namespace: str | None,
        notify: Callable[[ObjectRef, dict[str, Any] | None], None],
        stop: threading.Event,
    ) -> None:
        list_objects = self._lister(namespace)
        where = f" in {namespace}" if namespace is not None else ""
        while not stop.is_set():
            try:
                listing = list_objects(_request_timeout=REQUEST_TIMEOUT)
                current = {ref_of(item): item for item in listing.get("items", [])}
                with self._lock:
                    mine = {ref for ref in self._objects if namespace is None or ref.namespace == namespace}
                    gone = mine - set(current)
                    for ref in gone:
                        del self._objects[ref]
                    self._objects.update(current)
                for ref in gone:
                    notify(ref, None)
                for ref, item in current.items():
                    notify(ref, item)
                stream = watch.Watch()
                for event in stream.stream(
                    list_objects,
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
                    notify(ref, None if kind == "DELETED" else obj)
            except ApiException as err:
                log.warning("watching %s%s failed: %s %s; listing again", self.plural, where, err.status, err.reason)
                stop.wait(2)
            except Exception as err:  # connection resets, timeouts: keep watching
                log.warning("watching %s%s failed: %s; listing again", self.plural, where, err)
                stop.wait(2)

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
        """JSON-merge-patch the status subresource; None when the object changed (409) or went away (404).

        A ``metadata.resourceVersion`` in ``patch`` makes the API server refuse the write if the object moved
        on since that version (optimistic concurrency): the caller reads it again and decides anew.
        """
        try:
            result = self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ref.namespace,
                self.plural,
                ref.name,
                patch,
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as err:
            if err.status in (404, 409):
                return None
            raise
        return cast(dict[str, Any], result)
