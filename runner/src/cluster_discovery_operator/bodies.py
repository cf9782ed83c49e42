"""Types for what travels to and from the API server, and object keys.

Raw API objects are JSON maps whose shape depends on the kind, so they stay
``dict[str, Any]`` (``KubeObject``) and are read through the small accessors
below, which never raise on a malformed object: a CR without metadata or with a
spec that is not a map is still something we can report on. The bodies we build
ourselves (conditions and their ansibleResult, events) are TypedDicts, so
mypy checks every field name we write.

Object keys are ``namespace/name`` (``name`` for cluster-scoped objects), as in
controller-runtime's NamespacedName; a NewType keeps them from being confused
with other strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NewType, TypedDict

KubeObject = dict[str, Any]
"""One API object as decoded from JSON."""

ObjectKey = NewType("ObjectKey", str)
"""``namespace/name``, or ``name`` for a cluster-scoped object."""


def object_key(namespace: str | None, name: str) -> ObjectKey:
    return ObjectKey(f"{namespace}/{name}" if namespace else name)


def split_key(key: ObjectKey) -> tuple[str, str]:
    """Return (namespace, name); namespace is "" for cluster-scoped objects."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("name") or "")


def namespace_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("namespace") or "")


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    return object_key(namespace_of(obj), name_of(obj))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("uid") or "")


def resource_version_of(obj: Mapping[str, Any]) -> str:
    return str(metadata(obj).get("resourceVersion") or "")


def generation_of(obj: Mapping[str, Any]) -> int:
    value = metadata(obj).get("generation")
    return value if isinstance(value, int) else 0


def string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return string_map(metadata(obj).get("labels"))


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return string_map(metadata(obj).get("annotations"))


def finalizers_of(obj: Mapping[str, Any]) -> list[str]:
    value = metadata(obj).get("finalizers")
    return [str(item) for item in value] if isinstance(value, list) else []


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(metadata(obj).get("deletionTimestamp"))


def owner_references_of(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    value = metadata(obj).get("ownerReferences")
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return dict(spec) if isinstance(spec, Mapping) else {}


def status_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return dict(status) if isinstance(status, Mapping) else {}


def group_of(api_version: str) -> str:
    """The group of an apiVersion ("" for the core group's "v1")."""
    return api_version.rpartition("/")[0]


class AnsibleResult(TypedDict):
    """operator-sdk's ansibleResult: the playbook_on_stats counts of the object's host."""

    ok: int
    changed: int
    skipped: int
    failures: int
    completion: str


class Condition(TypedDict, total=False):
    """A status condition as operator-sdk writes it (plus whatever a role adds through k8s_status)."""

    type: str
    status: str
    lastTransitionTime: str
    reason: str
    message: str
    ansibleResult: AnsibleResult
    lastHeartbeatTime: str
    observedGeneration: int


class ObjectReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    namespace: str
    uid: str
    resourceVersion: str


class EventSource(TypedDict):
    component: str


class EventMetadata(TypedDict, total=False):
    name: str
    namespace: str
    generateName: str


class Event(TypedDict, total=False):
    """core/v1 Event (what ``kubectl describe`` shows)."""

    apiVersion: str
    kind: str
    metadata: EventMetadata
    involvedObject: ObjectReference
    reason: str
    message: str
    type: str
    count: int
    firstTimestamp: str
    lastTimestamp: str
    source: EventSource
    reportingComponent: str
    reportingInstance: str


class WatchEvent(TypedDict):
    """One line of a watch stream."""

    type: str
    object: KubeObject
