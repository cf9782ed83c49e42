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
  - Without O(force), the write is a JSON patch that tests each status key it writes still holds what the new value
    was computed from, and is computed again when one does not; so a concurrent writer of the same keys (such as the
    operator, writing conditions) is never overwritten, and writers of other keys never make it fail. With O(force),
    the replacement carries the resourceVersion it was computed from and is retried on a conflict.
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

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.status_writer import argspec, execute
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import run_as_module


def main():
    run_as_module(argspec, execute, failure="Failed to set status")


if __name__ == "__main__":
    main()
