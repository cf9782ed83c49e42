# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Record a Kubernetes Event as operator-sdk's k8s_event does: the task of the k8s_event module.

Private to the collection: may change without notice.

An Event of the same name and reason counts up (``count``, ``lastTimestamp``)
instead of being written again; another reason replaces it; with
``appendTimestamp`` every call makes a new Event. The involved object's uid
and resourceVersion are looked up, as kubectl describe needs them.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import TIME_FORMAT
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import TaskModule, k8s_task_argspec

# kubernetes.core's requires() reports a missing kubernetes library in its own words.
with contextlib.suppress(ImportError):
    from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

DEFAULT_COMPONENT = "cluster-discovery-operator"


def argspec() -> dict[str, Any]:
    return k8s_task_argspec(
        {
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "required": True},
            "merge_type": {"type": "list", "elements": "str", "choices": ["json", "merge", "strategic-merge"]},
            "message": {"type": "str", "required": True},
            "reason": {"type": "str", "required": True},
            "reportingComponent": {"type": "str", "default": DEFAULT_COMPONENT},
            "type": {"type": "str", "choices": ["Normal", "Warning"], "default": "Normal"},
            "source": {"type": "dict"},
            "involvedObject": {
                "type": "dict",
                "options": {
                    "apiVersion": {"type": "str", "required": True},
                    "kind": {"type": "str", "required": True},
                    "name": {"type": "str", "required": True},
                    "namespace": {"type": "str"},
                },
            },
            "appendTimestamp": {"type": "bool", "default": False},
        }
    )


def build_event(
    params: Mapping[str, Any],
    now: datetime.datetime,
    involved: dict[str, Any] | None = None,
    prior: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Event body; ``prior`` (the existing Event) continues its count when the reason is the same."""
    name = params["name"]
    if params.get("appendTimestamp"):
        name = f"{name}.{int(now.timestamp() * 1e9):x}"
    stamp = now.strftime(TIME_FORMAT)
    component = params.get("reportingComponent") or DEFAULT_COMPONENT
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": params["namespace"]},
        "message": params["message"],
        "reason": params["reason"],
        "type": params.get("type") or "Normal",
        "source": params.get("source") or {"component": component},
        "reportingComponent": component,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
    }
    if involved is not None:
        event["involvedObject"] = involved
    if prior is not None and prior.get("reason") == params["reason"]:
        event["count"] = int(prior.get("count") or 1) + 1
        event["firstTimestamp"] = prior.get("firstTimestamp") or stamp
    return event


def involved_object(client: Any, params: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = params.get("involvedObject")
    if not raw:
        return None
    involved = {k: v for k, v in raw.items() if v is not None}
    involved.setdefault("namespace", params["namespace"])
    try:
        resource = client.resource(involved["kind"], involved["apiVersion"])
        namespace = involved["namespace"] if resource.namespaced else None
        if not resource.namespaced:
            involved.pop("namespace", None)
        found = client.get(resource, name=involved["name"], namespace=namespace).to_dict()
        involved["uid"] = found["metadata"]["uid"]
        involved["resourceVersion"] = found["metadata"]["resourceVersion"]
    except (NotFoundError, ResourceNotFoundError):
        pass
    return involved


def execute(module: TaskModule, client: Any) -> dict[str, Any]:
    """The whole task with kubernetes.core's client; ``module.fail_json`` must not return."""
    params = module.params
    events = client.resource("Event", "v1")
    target = "Event {}/{}".format(params["namespace"], params["name"])
    prior = None
    if not params.get("appendTimestamp"):
        try:
            prior = client.get(events, name=params["name"], namespace=params["namespace"]).to_dict()
        except NotFoundError:
            prior = None
    if params["state"] == "absent":
        if prior is None:
            return {"changed": False}
        if not module.check_mode:
            client.delete(events, name=params["name"], namespace=params["namespace"])
        return {"changed": True}
    now = datetime.datetime.now(datetime.UTC)
    event = build_event(params, now, involved_object(client, params), prior)
    if module.check_mode:
        return {"changed": True, "result": event}
    try:
        if prior is None:
            written = client.create(events, event, namespace=params["namespace"])
        elif prior.get("reason") == params["reason"]:
            written = client.patch(
                events,
                {k: event[k] for k in ("count", "lastTimestamp", "message", "type")},
                name=params["name"],
                namespace=params["namespace"],
                content_type="application/merge-patch+json",
            )
        else:
            event["metadata"]["resourceVersion"] = prior["metadata"]["resourceVersion"]
            written = client.replace(events, event, name=params["name"], namespace=params["namespace"])
    except DynamicApiError as exc:
        module.fail_json(msg=f"Failed to record {target}: {exc.body}", status=exc.status, reason=exc.reason)
    return {"changed": True, "result": written.to_dict()}
