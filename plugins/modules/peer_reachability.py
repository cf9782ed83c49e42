#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: peer_reachability
short_description: Check that a Peer's published kubeconfig reaches its member's API server
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - Reads the C(Peer) O(namespace)/O(name) and the kubeconfig Secret that
    M(peerdiscovery.cluster_discovery.peer_sync) wrote for it, and asks the member's API server for its version with
    that kubeconfig's server, certificate authority and bearer token.
  - The kubeconfig came from a swarm member. It is checked against the one shape members may publish (one https
    server with inline CA data, one inline bearer token, one context with a namespace) and is never given to a
    kubeconfig loader, so no C(exec) plugin, C(auth-provider), C(tokenFile), proxy or local file it could name is
    ever used. The request uses no proxy.
  - Only Peers written by M(peerdiscovery.cluster_discovery.peer_sync) (they carry the labels of their Identity and
    swarm), and only the Secret it wrote for them (C(<name>-kubeconfig), controlled by the Peer), are used; any other
    is reported as V(NotManaged) and nothing is sent anywhere.
  - Changes nothing; the result is meant for the Peer's C(Reachable) condition. Supports check mode.
options:
  name:
    description: The Peer's name.
    type: str
    required: true
  namespace:
    description: The Peer's namespace.
    type: str
    required: true
  timeout:
    description: Seconds to wait for the member's API server.
    type: float
    default: 10
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - python >= 3.11
  - kubernetes
  - PyYAML
  - cryptography
"""

EXAMPLES = r"""
- name: Ask the member's API server for its version with the kubeconfig it published
  peerdiscovery.cluster_discovery.peer_reachability:
    name: qmz9jtrzdiarhzw1x28m51rarefnhtj8xnohyt8ewr7sqx
    namespace: private-network-peer-configuration
  register: reachability
"""

RETURN = r"""
reachable:
  description: Whether the member's API server answered with the published kubeconfig.
  returned: success
  type: bool
  sample: true
reason:
  description:
    - V(APIServerAnswered), V(APIServerUnreachable), V(NoKubeconfig), V(KubeconfigRefused) (not of the accepted
      shape), V(NotManaged) (a Peer or Secret cluster-discovery did not write) or V(NotFound).
  returned: success
  type: str
  sample: APIServerAnswered
message:
  description: What was seen, for the condition's message. Never quotes the kubeconfig.
  returned: success
  type: str
  sample: Kubernetes v1.37.2 answered at https://35.187.98.45:6443
version:
  description: The member's Kubernetes version, when it answered.
  returned: success
  type: str
  sample: v1.37.2
"""

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    HAS_DEPENDENCIES,
    IMPORT_ERROR,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_reachability import argspec, execute
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import run_as_module


def main():
    missing = None if HAS_DEPENDENCIES else ("PyYAML and cryptography", IMPORT_ERROR)
    run_as_module(argspec, execute, failure="Failed to check the Peer", missing=missing)


if __name__ == "__main__":
    main()
