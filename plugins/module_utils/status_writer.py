# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Write an object's status as operator-sdk's k8s_status does: the task of the k8s_status module and action.

Private to the collection: may change without notice.

Conditions are checked as operator-sdk checks them, merged by type into what
the object shows, and stamped with ``lastTransitionTime`` only when their
status changes. The write is a JSON patch whose tests require each key it
writes to still hold what the new value was computed from, so other writers of
other keys never hold it back and a writer of the same keys is never
overwritten (the write is computed again); with ``force`` it is a replacement
of the whole status carrying the resourceVersion it was computed from.
Nothing is written when the object already shows what is asked.
"""

from __future__ import annotations

import contextlib
import copy
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import utc_now
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import (
    MakeClient,
    TaskModule,
    k8s_task_argspec,
)

# kubernetes.core's requires() reports a missing kubernetes library in its own words.
with contextlib.suppress(ImportError):
    from kubernetes.dynamic.exceptions import (
        ConflictError,
        DynamicApiError,
        ResourceNotFoundError,
        UnprocessibleEntityError,
    )

CONDITION_KEYS = ("type", "status", "reason", "message", "lastHeartbeatTime", "lastTransitionTime")
_CAMEL_CASE = re.compile(r"[A-Z][A-Za-z0-9]*")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?(\.\d+)?(([+-]\d\d:\d\d)|Z)")
_ATTEMPTS = 5


def conflict_backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` after a 409: client-go's retry.DefaultBackoff (10 ms, x5, 10 % jitter).

    Retrying at once loses again to a writer that writes as often as the read-compute-write takes.
    """
    return 0.01 * 5.0 ** (attempt - 1) * (1 + random.random() * 0.1)


Status = dict[str, Any]
Condition = dict[str, Any]


def argspec() -> dict[str, Any]:
    return k8s_task_argspec(
        {
            "api_version": {"type": "str", "default": "v1", "aliases": ["api", "version"]},
            "kind": {"type": "str", "required": True},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str"},
            "status": {"type": "dict"},
            "conditions": {"type": "list", "elements": "dict"},
            "force": {"type": "bool", "default": False},
        }
    )


def validate_conditions(conditions: Sequence[Any] | None) -> list[Condition]:
    """Check and normalise conditions as operator-sdk's k8s_status does; ValueError names the problem."""
    result = []
    for position, raw in enumerate(conditions or []):
        where = f"conditions[{position}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: each condition must be a mapping")
        condition = dict(raw)
        if isinstance(condition.get("status"), bool):
            condition["status"] = "True" if condition["status"] else "False"
        for key in condition:
            if key not in CONDITION_KEYS:
                raise ValueError(
                    f"{where}: {key} is not a valid field for a condition, accepted fields are"
                    f" {', '.join(CONDITION_KEYS)}"
                )
        for key in ("type", "status"):
            if not condition.get(key):
                raise ValueError(f"{where}: condition `{key}` must be set")
        if condition["status"] not in ("True", "False", "Unknown"):
            raise ValueError(
                f'{where}: condition `status` must be one of "True", "False", "Unknown", not {condition["status"]!r}'
            )
        if condition.get("reason") and not _CAMEL_CASE.fullmatch(str(condition["reason"])):
            raise ValueError(f"{where}: condition `reason` must be a single CamelCase word")
        for key in ("lastHeartbeatTime", "lastTransitionTime"):
            if condition.get(key) and not _RFC3339.fullmatch(str(condition[key])):
                raise ValueError(f"{where}: `{key}` must be an RFC 3339 date-time")
        result.append(condition)
    return result


def _value_contains(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_value_contains(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and all(any(_value_contains(c, w) for c in current) for w in wanted)
    return bool(current == wanted)


def status_contains(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when ``wanted`` (status keys and conditions) is already part of ``current``."""
    for key, value in wanted.items():
        if key == "conditions":
            existing = {c.get("type"): c for c in current.get("conditions") or [] if isinstance(c, dict)}
            for condition in value:
                present = existing.get(condition["type"])
                if present is None or not all(present.get(k) == v for k, v in condition.items()):
                    return False
        elif not _value_contains(current.get(key), value):
            return False
    return True


def merge_conditions(current: Sequence[Any] | None, wanted: Sequence[Condition], now: str) -> list[Condition]:
    """Replace conditions by type, append new types; stamp lastTransitionTime when the status changes."""
    merged = [copy.deepcopy(c) for c in current or [] if isinstance(c, dict)]
    for asked in wanted:
        condition = dict(asked)
        existing = next((c for c in merged if c.get("type") == condition["type"]), None)
        if "lastTransitionTime" not in condition:
            if (
                existing is not None
                and existing.get("status") == condition["status"]
                and existing.get("lastTransitionTime")
            ):
                condition["lastTransitionTime"] = existing["lastTransitionTime"]
            else:
                condition["lastTransitionTime"] = now
        merged = [c for c in merged if c.get("type") != condition["type"]] + [condition]
    return merged


def desired_patch(current: Mapping[str, Any], wanted: Mapping[str, Any], now: str) -> Status:
    """The status keys to write (a merge patch): the given keys, and the merged conditions."""
    patch = {key: copy.deepcopy(value) for key, value in wanted.items() if key != "conditions"}
    if "conditions" in wanted:
        patch["conditions"] = merge_conditions(current.get("conditions"), wanted["conditions"], now)
    return patch


def replacement(current: Mapping[str, Any], wanted: Mapping[str, Any], now: str) -> Status:
    """The whole new status under force; conditions keep their lastTransitionTime when their status is unchanged."""
    status = copy.deepcopy(dict(wanted))
    if "conditions" in status:
        types = {c["type"] for c in status["conditions"]}
        kept = [c for c in current.get("conditions") or [] if isinstance(c, dict) and c.get("type") in types]
        status["conditions"] = merge_conditions(kept, status["conditions"], now)
    return status


def wanted_status(params: Mapping[str, Any]) -> Status:
    """What the task asks for (status keys plus validated conditions); ValueError when it is malformed."""
    conditions = validate_conditions(params.get("conditions"))
    status = dict(params.get("status") or {})
    if conditions and "conditions" in status:
        raise ValueError("You cannot specify conditions in both the `status` and `conditions` parameters")
    if "conditions" in status:
        conditions = validate_conditions(status.pop("conditions"))
    if not status and not conditions and params.get("conditions") is None and params.get("status") is None:
        raise ValueError("one of status or conditions is required")
    wanted = dict(status)
    if conditions or params.get("conditions") is not None:
        wanted["conditions"] = conditions
    return wanted


def merged(current: Any, patch: Any) -> Any:
    """``patch`` applied to ``current`` as a JSON merge patch (RFC 7386) applies it: what the server would store."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(result.get(key), value)
    return result


def _pointer(key: str) -> str:
    return "/status/" + key.replace("~", "~0").replace("/", "~1")


def guarded_patch(before: Status | None, patch: Status) -> list[dict[str, Any]]:
    """A JSON patch writing ``patch``'s keys, each guarded by a test that it still holds what was read.

    ``before`` is the status as read (None when the object has none). The guard covers exactly what
    the new values were computed from, so a writer of other status keys (the agent's liveness fields
    beside the check's conditions) never makes this write fail, while a writer of the same keys does.
    """
    after = merged(before or {}, patch)
    if before is None:
        return [{"op": "test", "path": "/status", "value": None}, {"op": "add", "path": "/status", "value": after}]
    operations: list[dict[str, Any]] = []
    for key in patch:
        if key not in after and key not in before:
            continue  # removing what is not there
        operations.append({"op": "test", "path": _pointer(key), "value": before.get(key)})
        if key in after:
            operations.append({"op": "add", "path": _pointer(key), "value": after[key]})
        else:
            operations.append({"op": "remove", "path": _pointer(key)})
    return operations


def _status_read(instance: Mapping[str, Any]) -> Status | None:
    status = instance.get("status")
    return status if isinstance(status, dict) else None


def _changed_at(before: Status | None, now: Status | None, keys: Mapping[str, Any]) -> bool:
    """True when ``keys`` of the status no longer hold what was read: a guarded patch's test failed."""
    if (before is None) != (now is None):
        return True
    return any((before or {}).get(key) != (now or {}).get(key) for key in keys)


def _write(module: TaskModule, client: Any, resource: Any, wanted: Status) -> dict[str, Any]:
    """Read, compare, write (again when what it was computed from changed meanwhile); return the module result."""
    params = module.params
    target = "{} {}".format(params["kind"], "/".join(filter(None, [params.get("namespace"), params["name"]])))

    def read() -> dict[str, Any]:
        try:
            return dict(client.get(resource, name=params["name"], namespace=params.get("namespace")).to_dict())
        except DynamicApiError as exc:
            module.fail_json(msg=f"Failed to get {target}: {exc.body}", status=exc.status, reason=exc.reason)

    instance = read()
    for attempt in range(1, _ATTEMPTS + 1):
        read_status = _status_read(instance)
        before = read_status or {}
        now = utc_now()
        patch: Status = {}
        if params["force"]:
            after = replacement(before, wanted, now)
            changed = before != after
        else:
            changed = not status_contains(before, wanted)
            patch = desired_patch(before, wanted, now)
            after = merged(before, patch)
        result: dict[str, Any] = {"changed": changed, "result": instance}
        if module._diff:
            result["diff"] = {"before": before, "after": after if changed else before}
        if not changed or module.check_mode:
            if changed:
                result["result"] = dict(instance, status=after)
            return result
        try:
            if params["force"]:
                written = resource.status.replace(
                    body=dict(instance, status=after), name=params["name"], namespace=params.get("namespace")
                )
            else:
                written = resource.status.patch(
                    body=guarded_patch(read_status, patch),
                    name=params["name"],
                    namespace=params.get("namespace"),
                    content_type="application/json-patch+json",
                )
        except (ConflictError, UnprocessibleEntityError) as exc:
            fresh = read()
            # A failed test is a 422 that names no field: reading again tells it from a refused status.
            if isinstance(exc, UnprocessibleEntityError) and (
                params["force"] or not _changed_at(read_status, _status_read(fresh), patch)
            ):
                module.fail_json(
                    msg=f"Failed to update status of {target}: {exc.body}", status=exc.status, reason=exc.reason
                )
            if attempt == _ATTEMPTS:
                module.fail_json(msg=f"Failed to update status of {target}: it kept changing during the update")
            time.sleep(conflict_backoff(attempt))
            instance = fresh
            continue
        except DynamicApiError as exc:
            module.fail_json(
                msg=f"Failed to update status of {target}: {exc.body}", status=exc.status, reason=exc.reason
            )
        result["result"] = written.to_dict()
        return result
    return {"changed": False}


def execute(module: TaskModule, make_client: MakeClient) -> dict[str, Any]:
    """The whole task; ``module.fail_json`` must not return."""
    params = module.params
    try:
        wanted = wanted_status(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    client = make_client()
    try:
        resource = client.resource(params["kind"], params["api_version"])
    except ResourceNotFoundError:
        module.fail_json(msg="Failed to find kind {} in {}".format(params["kind"], params["api_version"]))
    if "status" not in resource.subresources:
        module.fail_json(
            msg="Resource {}.{} does not support the status subresource".format(params["kind"], params["api_version"])
        )
    return _write(module, client, resource, wanted)
