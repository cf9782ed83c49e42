"""What a controller writes to the object it reconciles, each write with its retries.

Conditions go through the status subresource, computed from the object's
current conditions and carrying the resourceVersion they were computed from:
on 409 (the role wrote meanwhile, often through k8s_status) the object is read
again and the conditions computed again, so a role's own status fields and
conditions are never overwritten. Removing the finalizer follows the same
rule. A failure's Warning Event counts up while the same failure repeats.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from .bodies import (
    Condition,
    KubeObject,
    ObjectKey,
    generation_of,
    metadata,
    name_of,
    namespace_of,
    resource_version_of,
    split_key,
    status_of,
)
from .finalizers import removing_patch
from .kube import ConflictError, KubeClient, KubeError, NotFoundError, Resource
from .logs import fields
from .object_state import FailureEvent, ObjectStates
from .status import (
    EVENT_REASON_FAILED,
    EVENT_REASON_FINALIZER_FAILED,
    conditions_of,
    failure_event,
    now_rfc3339,
    status_patch,
)

log = logging.getLogger(__name__)

ATTEMPTS = 5
"""Reads and writes per change before a run of 409s is reported."""


def conflict_backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` after a 409: client-go's retry.DefaultBackoff (10 ms, x5, 10 % jitter).

    Retrying at once loses again to a writer that writes as often as the read-compute-write takes.
    """
    return 0.01 * 5.0 ** (attempt - 1) * (1 + random.random() * 0.1)


COMPONENT = "cluster-discovery-operator"

ComputeConditions = Callable[[list[Condition]], list[Condition]]
"""The object's conditions after a change, from its current ones."""


class ObjectWrites:
    def __init__(self, kube: KubeClient, resource: Resource, objects: ObjectStates, *, instance: str) -> None:
        self.kube = kube
        self.resource = resource
        self.objects = objects
        self.instance = instance

    def conditions(self, key: ObjectKey, compute: ComputeConditions, *, obj: KubeObject | None = None) -> KubeObject:
        """Patch status.conditions (and observedGeneration) computed from the object's current conditions.

        ``obj`` is the object as last read, if it is fresh enough to start from; None reads it first.
        """
        namespace, name = split_key(key)
        for attempt in range(1, ATTEMPTS + 1):
            if obj is None:
                obj = self.kube.get(self.resource, namespace=namespace or None, name=name)
            current_status = status_of(obj)
            patch = status_patch(
                current_status, compute(conditions_of(current_status)), observed_generation=generation_of(obj) or None
            )
            if patch is None:
                return obj
            body = {"metadata": {"resourceVersion": resource_version_of(obj)}, "status": patch}
            try:
                return self.kube.patch(
                    self.resource,
                    namespace=namespace or None,
                    name=name,
                    body=body,
                    subresource="status",
                    what="update status of",
                )
            except ConflictError:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(conflict_backoff(attempt))
                obj = None
        raise AssertionError("unreachable")

    def remove_finalizer(self, key: ObjectKey, finalizer: str) -> None:
        namespace, name = split_key(key)
        for attempt in range(1, ATTEMPTS + 1):
            fresh = self.kube.get(self.resource, namespace=namespace or None, name=name)
            if finalizer not in (metadata(fresh).get("finalizers") or []):
                return
            try:
                self.kube.patch(
                    self.resource,
                    namespace=namespace or None,
                    name=name,
                    body=removing_patch(fresh, finalizer),
                    what="remove finalizer from",
                )
                return
            except ConflictError:
                if attempt == ATTEMPTS:
                    raise
                time.sleep(conflict_backoff(attempt))

    def failure_event(self, key: ObjectKey, obj: KubeObject, message: str, *, finalizer_run: bool) -> None:
        """A Warning Event for a failed run; the same failure again counts up the last one. Never raises."""
        reason = EVENT_REASON_FINALIZER_FAILED if finalizer_run else EVENT_REASON_FAILED
        now = now_rfc3339()
        namespace = namespace_of(obj) or "default"
        context = {"kind": self.resource.kind, "namespace": namespace_of(obj) or None, "name": name_of(obj)}
        last = self.objects.last_event(key)
        try:
            if last is not None and last.message == message:
                self.kube.patch_event(
                    namespace=namespace, name=last.name, body={"count": last.count + 1, "lastTimestamp": now}
                )
                self.objects.set_last_event(key, FailureEvent(last.name, message, last.count + 1))
                return
        except NotFoundError:
            pass
        except KubeError as exc:
            log.warning("could not update the failure event", extra=fields(**context, error=str(exc)))
            return
        event = failure_event(
            obj,
            reason=reason,
            message=message,
            now=now,
            component=COMPONENT,
            instance=self.instance,
            name_suffix=f"{time.time_ns():x}",
        )
        try:
            created = self.kube.create_event(event)
        except KubeError as exc:
            log.warning("could not create the failure event", extra=fields(**context, error=str(exc)))
            return
        self.objects.set_last_event(key, FailureEvent(name_of(created) or event["metadata"]["name"], message, 1))
