#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: peer_sync
short_description: Keep Peer objects in step with the identities discovered on a swarm
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - Writes one discovery round of M(peerdiscovery.cluster_discovery.ipfs_identity) into Kubernetes, for one local
    Identity on one swarm, in the namespace O(namespace).
  - Each live discovered identity becomes a C(Peer) named after the lowercased publisher peer id, with status
    C(Online) and C(missingCounter) 0, its categories as labels C(category.peerdiscovery.irt-saintexupery.com/<slug>),
    and its kubeconfig in a Secret named by the annotation C(clusterdiscovery/kubeconfig-secret) (key C(config)).
  - A retracted identity (tombstone) deletes its Peer and Secret.
  - A Peer that was not heard counts one more miss; it turns C(Offline) after O(offline_after) misses and is deleted
    after O(forget_after) misses.
  - A Peer's C(lastSeen) changes only with the Peer (created, C(Online) again, a new document, or C(Offline), which
    shows the last time its member was heard), so a round that learns nothing new writes nothing.
  - An C(Offline) Peer turns C(Online) again only when its member was heard after the Peer's C(lastSeen), so a round
    that learned the members before the discovery agent turned a silent one C(Offline) leaves that Peer C(Offline).
  - A member whose documents were all refused (O(rejected)) keeps its Peer exactly as it is.
  - Peers carrying another Identity's labels are never touched.
  - O(state=absent) deletes every Peer of this Identity and swarm (the Identity's finalizer uses it).
  - Supports check mode (server-side dry run).
options:
  state:
    description: V(present) synchronizes; V(absent) removes every Peer of this Identity and swarm.
    type: str
    choices: [present, absent]
    default: present
  namespace:
    description: The namespace of the swarm's Peers (the C(namespace) of the Identity's swarm entry).
    type: str
    required: true
  identity_name:
    description: The local Identity that discovered the Peers.
    type: str
    required: true
  identity_namespace:
    description: Its namespace.
    type: str
    required: true
  identity_uid:
    description: Its uid; Peers in its own namespace are then owned by it and go with it.
    type: str
  swarm_pool:
    description: The SwarmPool of the swarm.
    type: str
    required: true
  swarm:
    description: The swarm's name in that SwarmPool.
    type: str
    required: true
  identities:
    description:
      - The RV(peerdiscovery.cluster_discovery.ipfs_identity#module:identities) of a discovery round. Only those
        with C(live) true count as heard.
      - Only their kubeconfigs are hidden from the output; the rest is what the Peers show.
    type: list
    elements: dict
    default: []
    suboptions:
      peer_id:
        description: The member's peer id.
        type: str
        required: true
      cid:
        description: The CID of its document.
        type: str
      sequence:
        description: The document's sequence number.
        type: int
        required: true
      issued_at:
        description: When the document was issued.
        type: str
      name:
        description: The member's name.
        type: str
      description:
        description: Its description.
        type: str
      url:
        description: Its API server URL.
        type: str
      categories:
        description: Its categories.
        type: list
        elements: str
      addresses:
        description: Its swarm addresses.
        type: list
        elements: str
      kubernetes_version:
        description: Its Kubernetes version.
        type: str
      kubeconfig:
        description: The kubeconfig it published, checked and in canonical form.
        type: str
      live:
        description: Whether the member answered now or was heard recently.
        type: bool
        default: true
      heard_at:
        description:
          - When the member was last heard, as a UTC time C(YYYY-MM-DDTHH:MM:SSZ); one of any other form is ignored.
          - The C(lastSeen) of its Peer when the Peer is created, turns C(Online) or C(Offline), or gets a new document.
        type: str
  removed:
    description:
      - Members whose latest document is a tombstone, as
        RV(peerdiscovery.cluster_discovery.ipfs_identity#module:removed) returns them (C(peer_id) and C(sequence)),
        or bare peer ids.
      - A Peer that already shows a later document of that member (the discovery agent may have applied one since
        this round) is kept; without a sequence the Peer is deleted.
    type: list
    elements: raw
    default: []
  rejected:
    description: The RV(peerdiscovery.cluster_discovery.ipfs_identity#module:rejected) of the round, or peer ids.
    type: list
    elements: raw
    default: []
  offline_after:
    description:
      - Misses after which a Peer is C(Offline). A miss is a round in which the member was not live, that is not heard
        within the Offline time of the round
        (O(peerdiscovery.cluster_discovery.ipfs_identity#module:fresh_within)), so the default of one miss turns a
        member Offline as soon as it has been silent for that long.
    type: int
    default: 1
  forget_after:
    description: Misses after which a Peer is deleted.
    type: int
    default: 720
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: >-
      A second identical round changes nothing, except that misses count up and C(lastSeen) moves every five
      minutes.
requirements:
  - python >= 3.11
  - kubernetes
  - PyYAML
  - cryptography
notes:
  - The kubeconfigs in O(identities) are never logged; the rest of each identity is what its Peer shows.
"""

EXAMPLES = r"""
- name: Learn every other member's identity
  peerdiscovery.cluster_discovery.ipfs_identity:
    api_url: http://10.0.0.12:5001
    swarm_key: "{{ swarm_key_text }}"
    state: discovered
  register: members
  no_log: true

- name: Keep the Peers of this swarm in step
  peerdiscovery.cluster_discovery.peer_sync:
    namespace: private-network-peer-configuration
    identity_name: cluster1-identity
    identity_namespace: private-network-peer-configuration
    swarm_pool: cluster1-private
    swarm: cluster1-private
    identities: "{{ members.identities }}"
    removed: "{{ members.removed }}"
    rejected: "{{ members.rejected }}"

- name: Remove the Peers this Identity discovered
  peerdiscovery.cluster_discovery.peer_sync:
    state: absent
    namespace: private-network-peer-configuration
    identity_name: cluster1-identity
    identity_namespace: private-network-peer-configuration
    swarm_pool: cluster1-private
    swarm: cluster1-private
"""

RETURN = r"""
created:
  description: Peers created.
  returned: success
  type: list
  elements: str
  sample: [qmpgihqyzm2hq9k7n2mrrfhjtauzmdhqnp8sbrgaw2mkd1]
updated:
  description: Peers whose metadata, spec, kubeconfig or status changed.
  returned: success
  type: list
  elements: str
deleted:
  description: Peers deleted (retracted, forgotten, or all with O(state=absent)).
  returned: success
  type: list
  elements: str
online:
  description: Peers of this Identity and swarm now Online.
  returned: success
  type: int
  sample: 2
offline:
  description: Peers now Offline.
  returned: success
  type: int
  sample: 0
synchronized:
  description: Members heard this round with a valid published identity.
  returned: success
  type: int
  sample: 2
gauges:
  description:
    - The Prometheus gauges of this Identity and swarm, as P(peerdiscovery.cluster_discovery.osdk_metric#module)
      requests (O(peerdiscovery.cluster_discovery.osdk_metric#module:name),
      O(peerdiscovery.cluster_discovery.osdk_metric#module:description),
      O(peerdiscovery.cluster_discovery.osdk_metric#module:labels),
      O(peerdiscovery.cluster_discovery.osdk_metric#module:gauge)), one per series.
    - C(cluster_discovery_controller_identity_controller_peers_number) with RV(online) (status C(Synchronized)) and
      RV(offline) (C(Out of sync)); C(cluster_discovery_controller_identity_controller_sync_peers_number) with
      RV(synchronized) and the number of members in O(rejected) (C(Out of sync)).
  returned: success
  type: list
  elements: dict
  sample:
    - name: cluster_discovery_controller_identity_controller_peers_number
      description: Number of known peer associated to a given identity
      labels: {identity_name: cluster1-identity, identity_namespace: default, status: Synchronized,
               swarm_name: private, swarmpool_name: cluster1, swarmpool_namespace: default}
      gauge: {set: 2}
"""

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    HAS_DEPENDENCIES,
    IMPORT_ERROR,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync_task import argspec, execute
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import run_as_module


def main():
    missing = None if HAS_DEPENDENCIES else ("PyYAML and cryptography", IMPORT_ERROR)
    run_as_module(argspec, execute, failure="Failed to synchronize Peers", missing=missing)


if __name__ == "__main__":
    main()
