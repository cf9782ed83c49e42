#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask the operator to reconcile the current object again after a while
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - The equivalent of C(operator_sdk.util.requeue_after), with the same option, so a role ports by changing the
    module's name.
  - Under the cluster-discovery operator, the next reconcile of the object being reconciled is scheduled O(time)
    after this run finishes successfully; it replaces the watch's C(reconcilePeriod) and the object's
    C(ansible.sdk.operatorframework.io/reconcile-period) annotation for that one run. If the task runs more than once
    in a run, the last value wins. The operator reads the result of this task from the run's event stream; nothing
    is sent anywhere, so outside the operator the module only validates O(time) and returns it. An action plugin does
    this on the controller, so no module process starts.
  - Unlike operator-sdk, the run is not cut short when this task runs, and the object's status is written as for any
    other run.
extends_documentation_fragment:
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
    details: Nothing changes in either mode; the operator honours the result in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  time:
    description:
      - How long to wait before the next reconcile, as a Go duration such as V(30s), V(5m), V(1h30m) or V(1.5h)
        (units C(ns), C(us), C(ms), C(s), C(m), C(h)), read as Go's C(time.ParseDuration) reads it, as the operator
        does. A negative duration is refused.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Check the swarm again in five minutes
  peerdiscovery.cluster_discovery.requeue_after:
    time: 5m

- name: Poll quickly while the node is still starting
  peerdiscovery.cluster_discovery.requeue_after:
    time: 10s
  when: node_status.phase != 'Running'
"""

RETURN = r"""
period:
  description: The requested delay, as given.
  returned: success
  type: str
  sample: 5m
seconds:
  description: The requested delay in seconds.
  returned: success
  type: float
  sample: 300.0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    requeue_argspec,
    requeue_request,
)


def main():
    module = AnsibleModule(argument_spec=requeue_argspec(), supports_check_mode=True)
    try:
        request = requeue_request(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **request)


if __name__ == "__main__":
    main()
