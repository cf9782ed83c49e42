#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_status
short_description: Set status fields and conditions of a Kubernetes object through its status subresource
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - The equivalent of C(operator_sdk.util.k8s_status), with the same options, so a role ports by changing the
    module's name. Meant for the controller of the object, for example a role run by the cluster-discovery operator.
  - Writes through the C(status) subresource only, so the object's spec and metadata are never touched.
  - Without O(force), O(status) keys are merge-patched and O(conditions) are merged by C(type) with the conditions
    already set (other types are kept, the operator's Running/Successful/Failure included). When everything given is
    already set (a subset of the current status), nothing is written and the task reports no change.
  - A condition's C(lastTransitionTime) is kept when its C(status) does not change, and set to now when it does (or
    when the condition is new), unless the task gives one.
  - With O(force), the whole status is replaced by O(status) (and O(conditions)).
  - The write carries the resourceVersion it was computed from and is retried on a conflict, so a concurrent writer
    (such as the operator) is never overwritten.
  - Kubernetes access works exactly as in kubernetes.core (kubeconfig, context, C(K8S_AUTH_*) variables).
  - When the connection is local, an action plugin does the same work on the controller, with the Kubernetes client
    loaded once per ansible-playbook process instead of once per task (about a CPU-second less per call).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff shows the status before and after.
  idempotent:
    support: full
options:
  api_version:
    description: API version of the object.
    type: str
    default: v1
    aliases: [api, version]
  kind:
    description: Kind of the object.
    type: str
    required: true
  name:
    description: Name of the object.
    type: str
    required: true
  namespace:
    description: Namespace of the object (omit for cluster-scoped kinds).
    type: str
  status:
    description:
      - Keys and values to set in the object's status. One of O(status) or O(conditions) is required.
    type: dict
  conditions:
    description:
      - Conditions to set in C(status.conditions), merged by C(type) unless O(force).
      - Each has C(type) and C(status) (V(True), V(False) or V(Unknown); a boolean is converted), and optionally
        C(reason) (a single CamelCase word), C(message), C(lastHeartbeatTime) and C(lastTransitionTime) (RFC 3339).
      - Conditions cannot be given in both O(status) and O(conditions).
    type: list
    elements: dict
  force:
    description:
      - Replace the whole status instead of merging into it.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Record the swarm's node address in the SwarmPool's status
  peerdiscovery.cluster_discovery.k8s_status:
    api_version: peerdiscovery.irt-saintexupery.com/v1alpha1
    kind: SwarmPool
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    status:
      swarms:
        - name: swarm1
          address: /ip4/10.0.0.5/tcp/4001

- name: Report that the node is not reachable yet
  peerdiscovery.cluster_discovery.k8s_status:
    api_version: peerdiscovery.irt-saintexupery.com/v1alpha1
    kind: SwarmPool
    name: "{{ ansible_operator_meta.name }}"
    namespace: "{{ ansible_operator_meta.namespace }}"
    conditions:
      - type: NodeReady
        status: "False"
        reason: NodeStarting
        message: The kubo node has not answered yet
"""

RETURN = r"""
result:
  description: The object after the write (or as it is, when nothing changed).
  returned: success
  type: dict
  contains:
    status:
      description: The object's status.
      returned: success
      type: dict
diff:
  description: The status before and after.
  returned: diff mode
  type: dict
  sample:
    before: {conditions: []}
    after: {conditions: [{type: NodeReady, status: "False"}]}
"""

import contextlib
import copy
import datetime
import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

# kubernetes.core's requires() reports a missing kubernetes library in its own words.
with contextlib.suppress(ImportError):
    from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, ResourceNotFoundError

CONDITION_KEYS = ("type", "status", "reason", "message", "lastHeartbeatTime", "lastTransitionTime")
_CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?(\.\d+)?(([+-]\d\d:\d\d)|Z)$")
_ATTEMPTS = 5


def validate_conditions(conditions):
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
                    "{}: {} is not a valid field for a condition, accepted fields are {}".format(
                        where, key, ", ".join(CONDITION_KEYS)
                    )
                )
        for key in ("type", "status"):
            if not condition.get(key):
                raise ValueError(f"{where}: condition `{key}` must be set")
        if condition["status"] not in ("True", "False", "Unknown"):
            raise ValueError(
                '{}: condition `status` must be one of "True", "False", "Unknown", not {!r}'.format(
                    where, condition["status"]
                )
            )
        if condition.get("reason") and not _CAMEL_CASE.fullmatch(str(condition["reason"])):
            raise ValueError(f"{where}: condition `reason` must be a single CamelCase word")
        for key in ("lastHeartbeatTime", "lastTransitionTime"):
            if condition.get(key) and not _RFC3339.fullmatch(str(condition[key])):
                raise ValueError(f"{where}: `{key}` must be an RFC 3339 date-time")
        result.append(condition)
    return result


def _value_contains(current, wanted):
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_value_contains(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and all(any(_value_contains(c, w) for c in current) for w in wanted)
    return current == wanted


def status_contains(current, wanted):
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


def merge_conditions(current, wanted, now):
    """Replace conditions by type, append new types; stamp lastTransitionTime when the status changes."""
    merged = [copy.deepcopy(c) for c in current or [] if isinstance(c, dict)]
    for condition in wanted:
        condition = dict(condition)
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


def desired_patch(current, wanted, now):
    """The status keys to write (a merge patch): the given keys, and the merged conditions."""
    patch = {key: copy.deepcopy(value) for key, value in wanted.items() if key != "conditions"}
    if "conditions" in wanted:
        patch["conditions"] = merge_conditions(current.get("conditions"), wanted["conditions"], now)
    return patch


def replacement(current, wanted, now):
    """The whole new status under force; conditions keep their lastTransitionTime when their status is unchanged."""
    status = copy.deepcopy(wanted)
    if "conditions" in status:
        types = {c["type"] for c in status["conditions"]}
        kept = [c for c in current.get("conditions") or [] if isinstance(c, dict) and c.get("type") in types]
        status["conditions"] = merge_conditions(kept, status["conditions"], now)
    return status


def now_rfc3339():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def argspec():
    args = copy.deepcopy(AUTH_ARG_SPEC)
    args.update(
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
    return args


def _write(module, client, resource, wanted):
    """Read, compare, write (retrying on conflicts); return the module result."""
    params = module.params
    target = "{} {}".format(params["kind"], "/".join(filter(None, [params.get("namespace"), params["name"]])))
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            instance = client.get(resource, name=params["name"], namespace=params.get("namespace")).to_dict()
        except DynamicApiError as exc:
            module.fail_json(msg=f"Failed to get {target}: {exc.body}", status=exc.status, reason=exc.reason)
        before = instance.get("status") or {}
        now = now_rfc3339()
        if params["force"]:
            after = replacement(before, wanted, now)
            changed = before != after
            body = dict(instance, status=after)
        else:
            changed = not status_contains(before, wanted)
            patch = desired_patch(before, wanted, now)
            after = dict(copy.deepcopy(before), **patch)
            body = {"metadata": {"resourceVersion": instance["metadata"]["resourceVersion"]}, "status": patch}
        result = {"changed": changed, "result": instance}
        if module._diff:
            result["diff"] = {"before": before, "after": after if changed else before}
        if not changed or module.check_mode:
            if changed:
                result["result"] = dict(instance, status=after)
            return result
        try:
            if params["force"]:
                written = resource.status.replace(body=body, name=params["name"], namespace=params.get("namespace"))
            else:
                written = resource.status.patch(
                    body=body,
                    name=params["name"],
                    namespace=params.get("namespace"),
                    content_type="application/merge-patch+json",
                )
        except ConflictError:
            if attempt == _ATTEMPTS:
                module.fail_json(msg=f"Failed to update status of {target}: it kept changing during the update")
            continue
        except DynamicApiError as exc:
            module.fail_json(
                msg=f"Failed to update status of {target}: {exc.body}", status=exc.status, reason=exc.reason
            )
        result["result"] = written.to_dict()
        return result
    return {"changed": False}


def wanted_status(params):
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


def execute(module, make_client):
    """The whole task: ``module`` offers params, check_mode, _diff and fail_json (which must not return).

    Shared by main() and the collection's action plugin, which runs this on the
    controller when the connection is local.
    """
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


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    try:
        module.exit_json(**execute(module, lambda: get_api_client(module)))
    except CoreException as exc:
        module.fail_from_exception(exc)
    except Exception as exc:  # the traceback goes in `exception`, never in `msg`
        module.fail_json(msg=f"Failed to set status: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
