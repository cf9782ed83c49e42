#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_event
short_description: Create, count or delete a Kubernetes Event about an object
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - The equivalent of C(operator_sdk.util.k8s_event), with the same options, so a role ports by changing the module's
    name.
  - Creates a core/v1 Event (the kind C(kubectl describe) shows) named O(name) in O(namespace). When an Event of that
    name already exists with the same O(reason), its C(count) goes up by one and its C(lastTimestamp) and message are
    updated, as the kubelet and controllers do; with another reason it is replaced.
  - With O(appendTimestamp), the current time is appended to O(name), so every call creates a new Event.
  - The involved object's C(uid) and C(resourceVersion) are filled in when it exists, so the Event is listed under it.
  - Kubernetes access works exactly as in kubernetes.core (kubeconfig, context, C(K8S_AUTH_*) variables).
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: An Event records an occurrence; repeating the task counts it again.
options:
  state:
    description: V(present) records the Event; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the Event.
    type: str
    required: true
  namespace:
    description: Namespace of the Event (the involved object's namespace, for a namespaced object).
    type: str
    required: true
  merge_type:
    description: Accepted for compatibility with operator_sdk.util.k8s_event; Events are always merge-patched.
    type: list
    elements: str
    choices: [json, merge, strategic-merge]
  message:
    description: What happened, for people.
    type: str
    required: true
  reason:
    description: Why, as a short CamelCase word that tools can match (for example V(SwarmJoined)).
    type: str
    required: true
  reportingComponent:
    description: Name of the controller that emits the Event.
    type: str
    default: cluster-discovery-operator
  type:
    description: Type of the Event.
    type: str
    choices: [Normal, Warning]
    default: Normal
  source:
    description:
      - The component reporting the Event, as a mapping with a C(component) key; defaults to O(reportingComponent).
    type: dict
  involvedObject:
    description: The object the Event is about.
    type: dict
    suboptions:
      apiVersion:
        description: API version of the object.
        type: str
        required: true
      kind:
        description: Kind of the object.
        type: str
        required: true
      name:
        description: Name of the object.
        type: str
        required: true
      namespace:
        description: Namespace of the object; defaults to O(namespace).
        type: str
  appendTimestamp:
    description: Append the current time to O(name), so each call creates a new Event.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Tell users the node joined its swarm
  peerdiscovery.cluster_discovery.k8s_event:
    name: "{{ ansible_operator_meta.name }}-joined"
    namespace: "{{ ansible_operator_meta.namespace }}"
    reason: SwarmJoined
    message: "The kubo node joined swarm {{ swarm_name }}"
    involvedObject:
      apiVersion: peerdiscovery.irt-saintexupery.com/v1alpha1
      kind: SwarmPool
      name: "{{ ansible_operator_meta.name }}"
"""

RETURN = r"""
result:
  description: The Event as stored.
  returned: success and O(state=present)
  type: dict
  contains:
    count:
      description: How many times the occurrence was recorded.
      returned: success
      type: int
      sample: 2
    reason:
      description: The reason.
      returned: success
      type: str
      sample: SwarmJoined
"""

import contextlib
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.event_recorder import argspec, execute

# kubernetes.core's requires() reports a missing kubernetes library in its own words.
with contextlib.suppress(ImportError):
    from kubernetes.dynamic.exceptions import DynamicApiError


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    try:
        client = get_api_client(module)
        module.exit_json(**execute(module, client))
    except CoreException as exc:
        module.fail_from_exception(exc)
    except DynamicApiError as exc:
        module.fail_json(msg=f"Failed to record the Event: {exc.body}", status=exc.status, reason=exc.reason)
    except Exception as exc:  # the traceback goes in `exception`, never in `msg`
        module.fail_json(msg=f"Failed to record the Event: {exc}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
