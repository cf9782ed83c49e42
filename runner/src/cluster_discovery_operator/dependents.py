"""Dependents: informers for the kinds a role's runs create, routing each change to its owner's controller.

operator-sdk injects owner references through a proxy in front of the API
server and watches every kind a role creates. We run no proxy: the runner
reads the objects kubernetes.core modules return, and for those that reference
a reconciled object as owner (or carry operator-sdk's
``operator-sdk/primary-resource`` annotations, for cluster-scoped or
cross-namespace dependents) :class:`DependentRouter` starts a metadata-light
informer of their kind. A change (not a creation, not a status-only change)
goes to the owner's controller, which decides whether it forces a run
(object_state).

Imports run one way: the controllers (reconciling) know the router; the router
knows them only as :class:`Owner`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .bodies import (
    KubeObject,
    ObjectKey,
    annotations_of,
    group_of,
    metadata,
    name_of,
    namespace_of,
    object_key,
    owner_references_of,
    resource_version_of,
    uid_of,
)
from .kube import KubeClient, KubeError, Resource
from .logs import fields
from .metrics import OperatorMetrics
from .object_state import DependentTrigger
from .running import OWNER_ANNOTATION, OWNER_TYPE_ANNOTATION, ProducedObject
from .settings import Settings
from .watches import GroupVersionKind, Watch
from .watching import ADDED, MODIFIED, Informer

log = logging.getLogger(__name__)


class Owner(Protocol):
    """A controller, as the router sees it."""

    @property
    def watch(self) -> Watch: ...

    @property
    def resource(self) -> Resource: ...

    def dependent_changed(self, owner: ObjectKey, trigger: DependentTrigger) -> None: ...


def _dependent_digest(obj: Mapping[str, Any]) -> str:
    """What a dependent change means: anything but status and the API server's bookkeeping."""
    meta = dict(metadata(obj))
    for volatile in ("resourceVersion", "managedFields", "generation"):
        meta.pop(volatile, None)
    document = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    document["metadata"] = meta
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def _slim(obj: KubeObject) -> KubeObject:
    """What a dependent informer keeps: enough to route the change, not the whole object."""
    meta = metadata(obj)
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "ownerReferences": meta.get("ownerReferences") or [],
            "annotations": {k: v for k, v in annotations.items() if k in (OWNER_ANNOTATION, OWNER_TYPE_ANNOTATION)},
        },
        "digest": _dependent_digest(obj),
    }


class DependentRouter:
    """Informers for dependent kinds, routing their changes to the owners' controllers."""

    def __init__(self, kube: KubeClient, settings: Settings, metrics: OperatorMetrics, identity: str) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.identity = identity
        self.controllers: dict[tuple[str, str], Owner] = {}
        self._lock = threading.Lock()
        self._watched: dict[tuple[str, str], list[Informer]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    def register(self, controller: Owner) -> None:
        self.controllers[(controller.watch.gvk.group, controller.watch.gvk.kind)] = controller

    def ensure_watch(self, produced: ProducedObject, *, owner_watch: Watch) -> None:
        """Watch ``produced``'s kind if no informer does yet (and the watch allows it)."""
        key = (produced.api_version, produced.kind)
        group, _, version = produced.api_version.rpartition("/")
        gvk = GroupVersionKind(group=group, version=version, kind=produced.kind)
        if gvk in owner_watch.blacklist or (group, produced.kind) in self.controllers:
            return
        with self._lock:
            if key in self._watched or self._stopped:
                return
            self._watched[key] = []
        try:
            resource = self.kube.discover(group, version, produced.kind)
        except KubeError as exc:
            log.warning("cannot watch a dependent kind", extra=fields(kind=produced.kind, error=str(exc)))
            with self._lock:
                self._watched.pop(key, None)
            return
        if not resource.namespaced and not owner_watch.watch_cluster_scoped_resources:
            log.info(
                "not watching a cluster-scoped dependent kind (watchClusterScopedResources is false)",
                extra=fields(kind=produced.kind),
            )
            return
        namespaces: Iterable[str | None] = (
            self.settings.namespaces if (resource.namespaced and self.settings.namespaces) else (None,)
        )
        restarts = self.metrics.watch_restarts

        def on_restart(reason: str) -> None:
            restarts.labels(group=group, kind=produced.kind, reason=reason).inc()

        informers = []
        for namespace in namespaces:
            informer = Informer(
                self.kube,
                resource,
                settings=self.settings.kube,
                namespace=namespace,
                handler=self._on_event,
                transform=_slim,
                on_restart=on_restart,
            )
            informers.append(informer)
            thread = threading.Thread(
                target=informer.run,
                args=(self._stop,),
                daemon=True,
                name=f"watch-dependent-{produced.kind}-{namespace or 'all'}",
            )
            thread.start()
            self._threads.append(thread)
        with self._lock:
            self._watched[key] = informers
        log.info("watching a dependent kind", extra=fields(kind=produced.kind, api_version=produced.api_version))

    def _on_event(self, event_type: str, obj: KubeObject, old: KubeObject | None) -> None:
        if event_type == ADDED:
            return  # creations are the owner's own doing, or precede any ownership (DependentPredicate)
        if event_type == MODIFIED and old is not None and old.get("digest") == obj.get("digest"):
            return  # status-only or bookkeeping change
        trigger = DependentTrigger(
            kind=str(obj.get("kind") or ""),
            name=name_of(obj),
            uid=uid_of(obj),
            resource_version=resource_version_of(obj),
            event_type=event_type,
        )
        for owner, controller in self._owners(obj):
            controller.dependent_changed(owner, trigger)

    def _owners(self, obj: KubeObject) -> list[tuple[ObjectKey, Owner]]:
        found: list[tuple[ObjectKey, Owner]] = []
        namespace = namespace_of(obj)
        for reference in owner_references_of(obj):
            controller = self.controllers.get(
                (group_of(str(reference.get("apiVersion") or "")), str(reference.get("kind") or ""))
            )
            if controller is None:
                continue
            owner_namespace = namespace if controller.resource.namespaced else ""
            found.append((object_key(owner_namespace, str(reference.get("name") or "")), controller))
        annotations = annotations_of(obj)
        owner_type = annotations.get(OWNER_TYPE_ANNOTATION, "")
        owner_name = annotations.get(OWNER_ANNOTATION, "")
        if owner_type and owner_name:
            kind, _, group = owner_type.partition(".")
            controller = self.controllers.get((group, kind))
            if controller is not None:
                owner_ns, _, name = owner_name.rpartition("/")
                found.append((object_key(owner_ns, name), controller))
        return found

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            informers = [i for group in self._watched.values() for i in group]
        self._stop.set()
        for informer in informers:
            informer.stop()
        for thread in self._threads:
            thread.join(timeout=2.0)
