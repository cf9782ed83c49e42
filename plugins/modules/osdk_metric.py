#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: osdk_metric
short_description: Create or update a Prometheus metric served by the operator
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - The equivalent of C(operator_sdk.util.osdk_metric), with the same options (O(name), O(description), O(address),
    O(counter), O(gauge), O(histogram), O(summary)), so a role ports by changing the module's name; plus O(labels).
  - Under the cluster-discovery operator the metric request travels in this task's result, which the operator reads
    from the run's event stream and applies to its C(/metrics) endpoint when the run ends. No listener, port or
    credential is involved. Requests are applied in task order.
  - An action plugin builds the request on the controller, so no module process starts (unless O(address) is set).
  - With O(address) the request is POSTed there instead, as operator-sdk's module does (its operator listens on
    C(http://localhost:5050/metrics)).
  - A metric keeps the type and label names it was first declared with; the operator refuses (and logs) a later
    request that disagrees.
  - Differences from operator-sdk, on purpose. A gauge's O(gauge.set) of V(0) sets 0 (operator-sdk ignored zero);
    O(labels) gives one series per label set, for example one per custom resource.
  - A series whose O(labels) include C(<kind>_namespace) and C(<kind>_name) (the watched kind in lower case, for
    example C(identity_namespace) and C(identity_name)) describes that custom resource; the operator removes it when
    the resource is deleted.
  - Outside the operator, without O(address), the module validates the request and returns it.
extends_documentation_fragment:
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
    details: In check mode the request is validated and returned but not sent to O(address).
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Counters and increments accumulate by design.
options:
  name:
    description:
      - Name of the Prometheus metric. Names starting with C(ansible_operator_), C(cluster_discovery_operator_) or
        C(process_) are reserved for the operator's own metrics.
    type: str
    required: true
  description:
    description:
      - Help text of the metric.
    type: str
    required: true
  address:
    description:
      - URL of an operator-sdk metrics listener to POST the request to. Leave unset under the cluster-discovery
        operator.
    type: str
  labels:
    description:
      - Label names and values of the series to update, for example the custom resource it describes.
    type: dict
    default: {}
  counter:
    description: Create or update a counter. Exactly one of O(counter), O(gauge), O(histogram), O(summary) is required.
    type: dict
    suboptions:
      increment:
        description: Add 1.
        type: bool
      add:
        description: Add this non-negative value.
        type: float
  gauge:
    description: Create or update a gauge.
    type: dict
    suboptions:
      set:
        description: Set the gauge to this value (V(0) included).
        type: float
      increment:
        description: Add 1.
        type: bool
      decrement:
        description: Subtract 1.
        type: bool
      add:
        description: Add this value.
        type: float
      subtract:
        description: Subtract this value.
        type: float
      set_to_current_time:
        description: Set the gauge to the current Unix time.
        type: bool
  histogram:
    description: Create or update a histogram.
    type: dict
    suboptions:
      observe:
        description: Record one observation.
        type: float
  summary:
    description: Create or update a summary.
    type: dict
    suboptions:
      observe:
        description: Record one observation.
        type: float
"""

EXAMPLES = r"""
- name: Publish how many peers this identity sees
  peerdiscovery.cluster_discovery.osdk_metric:
    name: cluster_discovery_controller_identity_controller_peers_number
    description: Peers an Identity discovered on its swarm
    labels:
      identity_name: "{{ ansible_operator_meta.name }}"
      identity_namespace: "{{ ansible_operator_meta.namespace }}"
      status: synced
    gauge:
      set: "{{ discovered_peers | length }}"

- name: Count reconciles of this role
  peerdiscovery.cluster_discovery.osdk_metric:
    name: swarmpool_role_runs
    description: Times the swarmpool role ran
    counter:
      increment: true
"""

RETURN = r"""
metric:
  description: The metric request, as the operator applies it.
  returned: success
  type: dict
  sample:
    name: cluster_discovery_controller_identity_controller_peers_number
    description: Peers an Identity discovered on its swarm
    labels:
      identity_name: cluster1
    gauge:
      set: 2.0
status_code:
  description: HTTP status of O(address) when it refused the request.
  returned: failure with O(address)
  type: int
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import (
    build_metric,
    metric_argspec,
)


def main():
    module = AnsibleModule(argument_spec=metric_argspec(), supports_check_mode=True)
    try:
        metric = build_metric(module.params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    address = module.params.get("address")
    if address and not module.check_mode:
        # Imported here: without an address (the operator's case) the HTTP stack is not needed.
        from ansible.module_utils.urls import open_url

        try:
            response = open_url(
                address,
                data=json.dumps(metric),
                headers={"Content-Type": "application/json"},
                method="POST",
                timeout=10,
            )
            status = response.getcode()
        except Exception as exc:  # open_url raises HTTPError (with .code) or URLError
            module.fail_json(
                msg="Failed to send metric {} to {}: {}".format(metric["name"], address, exc),
                status_code=getattr(exc, "code", None),
                metric=metric,
            )
        if status != 200:
            module.fail_json(
                msg="Failed to send metric {} to {}: HTTP {}".format(metric["name"], address, status),
                status_code=status,
                metric=metric,
            )
        module.exit_json(changed=True, metric=metric)
    module.exit_json(changed=False, metric=metric)


if __name__ == "__main__":
    main()
