"""The agent's view of Kubernetes: watched caches of the product's kinds, and status patches.

The agent watches with the operator's own informer and client
(cluster_discovery_operator.watching and .kube): list, then watch from the
list's resourceVersion, list again on 410 Gone or when the stream ends,
resume after errors with a capped backoff, every request with a timeout. One
:class:`Watched` serves every kind the agent follows (Identities for the fast
path, SwarmPools for their nodes' counters, Peers for the fast path's list), in
every namespace it is told.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cluster_discovery_operator.bodies import KubeObject, object_key
from cluster_discovery_operator.kube import ConflictError, KubeClient, NotFoundError
from cluster_discovery_operator.watching import DELETED, Informer

from .objects import IDENTITIES, PEERS, SWARM_POOLS, KindObjects

log = logging.getLogger(__name__)

WATCHABLE = {resource.plural: resource for resource in (IDENTITIES, SWARM_POOLS, PEERS)}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """A namespaced object of a watched kind."""

    namespace: str
    name: str


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    metadata = obj.get("metadata") or {}
    return ObjectRef(namespace=str(metadata.get("namespace", "")), name=str(metadata.get("name", "")))


class Presence:
    """Which objects a watch has shown: tells an object's appearance or disappearance from a change of one known."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[ObjectRef] = set()

    def moved(self, ref: ObjectRef, present: bool) -> bool:
        """Record ``ref`` as present or gone; True when it was not already known so."""
        with self._lock:
            if present == (ref in self._known):
                return False
            if present:
                self._known.add(ref)
            else:
                self._known.discard(ref)
            return True


class Watched:
    """The latest of each object of one kind, in some namespaces or all, kept by the operator's informers.

    ``namespaces`` as operator-sdk reads ``WATCH_NAMESPACE``: empty means every namespace; each named
    namespace gets its own list and watch (a user allowed in those namespaces may not list cluster-wide).
    """

    def __init__(self, kube: KubeClient, namespaces: Sequence[str] = (), *, plural: str) -> None:
        self.kube = kube
        self.plural = plural
        self.resource = WATCHABLE[plural]
        self.namespaces = tuple(dict.fromkeys(namespaces))
        self._on_change: Callable[[ObjectRef, dict[str, Any] | None], None] = lambda ref, obj: None
        self._informers = [
            Informer(kube, self.resource, settings=kube.settings, namespace=namespace, handler=self._handle)
            for namespace in (self.namespaces or (None,))
        ]

    def _informer_of(self, namespace: str) -> Informer | None:
        for informer in self._informers:
            if informer.namespace in (None, namespace):
                return informer
        return None

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        informer = self._informer_of(ref.namespace)
        return None if informer is None else informer.get(object_key(ref.namespace, ref.name))

    def covers(self, namespace: str) -> bool:
        """Whether the cache holds ``namespace``'s objects: it is watched and has been listed once."""
        informer = self._informer_of(namespace)
        return informer is not None and informer.synced.is_set()

    def objects_in(self, namespace: str) -> list[dict[str, Any]]:
        """The objects known now in ``namespace`` (none when it is not watched)."""
        informer = self._informer_of(namespace)
        if informer is None:
            return []
        return [obj for obj in informer.objects() if ref_of(obj).namespace == namespace]

    def snapshot(self) -> list[dict[str, Any]]:
        """Every object known now (the latest version of each), in a stable order."""
        return sorted((obj for informer in self._informers for obj in informer.objects()), key=ref_of)

    def _handle(self, event_type: str, obj: KubeObject, old: KubeObject | None) -> None:
        self._on_change(ref_of(obj), None if event_type == DELETED else obj)

    def run(
        self,
        on_change: Callable[[ObjectRef, dict[str, Any] | None], None] | None,
        stop: threading.Event,
    ) -> None:
        """Keep the cache and call ``on_change(ref, object or None when gone)`` for every change, until ``stop``."""
        if on_change is not None:
            self._on_change = on_change
        threads = [
            threading.Thread(target=informer.run, args=(stop,), name=f"watch {informer.name}", daemon=True)
            for informer in self._informers
        ]
        for thread in threads:
            thread.start()
        stop.wait()
        for informer in self._informers:
            informer.stop()
        for thread in threads:
            thread.join(timeout=5)

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
        """JSON-merge-patch the status subresource; None when the object changed (409) or went away (404).

        A ``metadata.resourceVersion`` in ``patch`` makes the API server refuse the write if the object moved
        on since that version (optimistic concurrency): the caller reads it again and decides anew.
        """
        try:
            return self.kube.patch(
                self.resource, namespace=ref.namespace, name=ref.name, body=patch, subresource="status"
            )
        except (ConflictError, NotFoundError):
            return None


def equality_labels(label_selector: str | None) -> dict[str, str] | None:
    """``a=b,c=d`` as ``{"a": "b", "c": "d"}``; None for any other selector (``in``, ``!=``, ``!key``, ``key``)."""
    labels: dict[str, str] = {}
    for requirement in (label_selector or "").split(","):
        if not requirement:
            continue
        key, equals, value = requirement.partition("=")
        if not equals or value.startswith("=") or key.endswith("!") or " " in requirement:
            return None
        labels[key] = value
    return labels


class CacheFirst:
    """Reads of a watched kind: from the watch's cache where it covers the namespace, else from the API server.

    The agent's fast path reads a SwarmPool and lists Peers for every piece of news; the cache has them
    already, as fresh as its watch, without a round trip to an API server that 50 members keep busy (at 50
    members the Peer list was the longest step of a pass whenever an ansible run shared the cores). A
    namespace the agent does not watch (an Identity's SwarmPool elsewhere) is asked for. What a pass then
    writes is read again from the API server first (peer_sync.apply). A Peer whose listed copy already shows
    what the pass would write is skipped, as it was with an API list a moment old: the watch's lag only
    widens that moment, and the next round corrects a writer that changed the Peer in between.
    """

    def __init__(self, watched: Watched, asked: KindObjects) -> None:
        if watched.resource != asked.resource:
            raise ValueError(f"{watched.resource.kind} watched, {asked.resource.kind} asked for")
        self._watched = watched
        self._asked = asked

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        if self._watched.covers(namespace):
            cached = self._watched.get(ObjectRef(namespace=namespace, name=name))
            return None if cached is None else dict(cached)
        return self._asked.get(name, namespace)

    def list(self, namespace: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        """The namespace's objects that ``label_selector`` selects; the cache answers only equality selectors."""
        labels = equality_labels(label_selector)
        if labels is None or not self._watched.covers(namespace):
            return self._asked.list(namespace, label_selector=label_selector)
        return [
            dict(obj)
            for obj in self._watched.objects_in(namespace)
            if all(((obj.get("metadata") or {}).get("labels") or {}).get(key) == value for key, value in labels.items())
        ]
