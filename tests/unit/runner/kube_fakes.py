"""In-memory stand-ins for the API server, for unit tests of the layers above ``kube``.

``FakeKube`` keeps objects with resourceVersions and applies the rules the
runner depends on: merge patches, a resourceVersion in a patch or update is a
precondition (409 on mismatch), the status subresource changes only status,
and removing the last finalizer of an object being deleted deletes it. It is
not an API server: the integration tests run against a real one.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from cluster_discovery_operator.kube import ConflictError, NotFoundError, Resource

WIDGETS = Resource(
    group="test.example.com", version="v1", kind="Widget", plural="widgets", namespaced=True, has_status=True
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self._rv = itertools.count(100)

    def _next_rv(self) -> str:
        return str(next(self._rv))

    def put(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace as a user would (spec changes bump the generation)."""
        meta = obj["metadata"]
        key = (resource.plural, meta.get("namespace", ""), meta["name"])
        existing = self.objects.get(key)
        stored = copy.deepcopy(obj)
        stored.setdefault("apiVersion", resource.api_version)
        stored.setdefault("kind", resource.kind)
        stored["metadata"].setdefault("uid", f"uid-{meta['name']}")
        generation = 1 if existing is None else existing["metadata"]["generation"]
        if existing is not None and existing.get("spec") != stored.get("spec"):
            generation += 1
        if existing is not None:
            stored["metadata"]["finalizers"] = existing["metadata"].get("finalizers", [])
            stored.setdefault("status", existing.get("status", {}))
        stored["metadata"]["generation"] = generation
        stored["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        key = (resource.plural, namespace, name)
        obj = self.objects[key]
        if obj["metadata"].get("finalizers"):
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            obj["metadata"]["generation"] += 1
            obj["metadata"]["resourceVersion"] = self._next_rv()
        else:
            del self.objects[key]

    # -- the KubeClient surface the runner uses ------------------------------------

    def get(self, resource: Resource, *, namespace: str | None, name: str) -> dict[str, Any]:
        self.calls.append(("get", name))
        obj = self.objects.get((resource.plural, namespace or "", name))
        if obj is None:
            raise NotFoundError(f"{name} not found", status=404)
        return copy.deepcopy(obj)

    def patch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        patch_type: str = "",
        what: str = "",
    ) -> dict[str, Any]:
        self.calls.append((f"patch-{subresource or 'object'}", name))
        key = (resource.plural, namespace or "", name)
        current = self.objects.get(key)
        if current is None:
            raise NotFoundError(f"{name} not found", status=404)
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise ConflictError(f"{name} was modified", status=409)
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = merge_patch(current.get("status") or {}, body.get("status") or {})
        else:
            body = copy.deepcopy(body)
            body.pop("status", None)
            updated = merge_patch(current, body)
        updated["metadata"]["resourceVersion"] = self._next_rv()
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get("finalizers"):
            del self.objects[key]
        else:
            self.objects[key] = updated
        return copy.deepcopy(updated)

    def create_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        self.events.append(copy.deepcopy(dict(event)))
        return copy.deepcopy(dict(event))

    def patch_event(self, *, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        for event in self.events:
            if event["metadata"]["name"] == name:
                event.update(copy.deepcopy(dict(body)))
                return copy.deepcopy(event)
        raise NotFoundError(f"event {name} not found", status=404)

    def list_objects(self, resource: Resource, **_: Any) -> tuple[list[dict[str, Any]], str]:
        items = [copy.deepcopy(o) for (plural, _, _), o in self.objects.items() if plural == resource.plural]
        return items, self._next_rv()

    def watch(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return iter(())

    def discover(self, group: str, version: str, kind: str) -> Resource:
        return Resource(group=group, version=version, kind=kind, plural=kind.lower() + "s", namespaced=True)
