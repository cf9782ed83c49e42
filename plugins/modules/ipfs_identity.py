#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipfs_identity
short_description: Publish, retract and discover cluster identities on a private IPFS swarm
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - Speaks the cluster-discovery identity protocol through a kubo node's RPC API at O(api_url). Identity documents
    travel by CID (C(add)/C(cat)); their CIDs are announced on a pubsub topic derived from the swarm key, so only
    members of the swarm can find or read them. Nothing depends on IPNS.
  - O(state=present) publishes this cluster's identity document (name, description, URL, categories, swarm
    addresses, Kubernetes version and a kubeconfig sealed with a key derived from the swarm key) and announces it.
    An unchanged identity keeps its CID and sequence number and reports no change; it is still announced.
  - O(state=absent) publishes a tombstone, so every member removes the identity.
  - O(state=discovered) asks the swarm for every member's identity, listens until the answers stop, merges what the
    node's discovery agent heard between runs, and returns the latest valid identity of each other member. The
    announcing peer must be the document's publisher; malformed, oversized or foreign documents are returned under
    RV(rejected) and change nothing.
  - Members answer asks and re-announce on a schedule through their discovery agent (C(cluster-discovery-agent),
    deployed beside the operator), which keeps listening between runs; a member without an agent is heard only at
    the moment it publishes.
  - The node remembers what it published in its own files (MFS, C(/cluster-discovery/v1)), so one node speaks for one
    identity (O(owner)).
  - Supports check mode (nothing is added, written or announced; the result is the prediction).
options:
  state:
    description:
      - V(present) publishes, V(absent) retracts, V(discovered) only reads the swarm.
    type: str
    choices: [present, absent, discovered]
    default: present
  swarm_key:
    description:
      - The swarm's PSK v1 key (the content of C(swarm.key)). It derives the topic and seals the kubeconfig; it is
        never returned or logged.
    type: str
    required: true
  owner:
    description:
      - Who the identity belongs to, for example C(Identity private-network-peer-configuration/cluster1-identity).
      - Required with O(state=present) and O(state=absent); a node that already publishes another owner's identity
        refuses to publish a second one.
    type: str
  name:
    description: The cluster's name, as members see it (required with O(state=present)).
    type: str
  description:
    description: A description of the cluster.
    type: str
    default: ""
  url:
    description: The URL of the cluster's Kubernetes API server, the server of the published kubeconfig.
    type: str
    default: ""
  categories:
    description: What the cluster offers, such as C(computing) or C(EO data).
    type: list
    elements: str
    default: []
  addresses:
    description: Multiaddrs where other members reach this cluster's node (the Addresses of its SwarmPool status).
    type: list
    elements: str
    default: []
  kubernetes_version:
    description: The cluster's Kubernetes version, for example C(v1.37.2).
    type: str
    default: ""
  kubeconfig:
    description:
      - A kubeconfig members may use to act in this cluster, sealed so that only holders of the swarm key read it.
      - It must have the one shape members accept, the shape it is checked against when received and before any
        use, with nothing else in it; exactly one cluster with an C(https) C(server) and inline
        C(certificate-authority-data), one user with an inline bearer C(token), one context with a C(namespace). A
        kubeconfig with an C(exec) plugin, an C(auth-provider), a C(tokenFile), file paths, C(proxy-url) or
        C(insecure-skip-tls-verify) fails the module. It is published in a canonical form of those fields.
      - Under a swarm key that is public (the default network's built-in key, or one printed in a manual) the
        kubeconfig is never published; the identity is, and RV(kubeconfig_withheld) says why.
    type: str
  announce:
    description:
      - Whether to announce the published identity or tombstone on the swarm now.
    type: bool
    default: true
  listen:
    description: The longest time, in seconds, O(state=discovered) listens for answers.
    type: float
    default: 3
  quiet:
    description: O(state=discovered) stops listening after this many seconds without a new message.
    type: float
    default: 0.5
  fresh_within:
    description:
      - The Offline time. A member whose announcement the node's discovery agent heard within this many seconds counts
        as live even if it did not answer during this run; one heard longer ago, and silent during this run, is not
        live, and M(peerdiscovery.cluster_discovery.peer_sync) turns its Peer C(Offline).
      - Members announce every 30 seconds by default, so the default lets three announcements go missing.
    type: float
    default: 90
extends_documentation_fragment:
  - peerdiscovery.cluster_discovery.kubo
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details: O(state=present) with unchanged options keeps the published CID and sequence.
requirements:
  - python >= 3.11
  - requests
  - PyYAML
  - cryptography
notes:
  - The kubeconfigs of discovered members are returned in RV(identities); register the result with C(no_log).
seealso:
  - module: peerdiscovery.cluster_discovery.ipfs_swarm
"""

EXAMPLES = r"""
- name: Publish this cluster's identity on the swarm
  peerdiscovery.cluster_discovery.ipfs_identity:
    api_url: http://10.0.0.12:5001
    swarm_key: "{{ swarm_key_text }}"
    owner: Identity private-network-peer-configuration/cluster1-identity
    name: Cluster 1
    description: I'm cluster 1
    url: https://35.240.24.118
    categories: [computing, EO data, IOT data]
    addresses: ["/ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"]
    kubeconfig: "{{ kubeconfig_text }}"
  no_log: true

- name: Learn every other member's identity
  peerdiscovery.cluster_discovery.ipfs_identity:
    api_url: http://10.0.0.12:5001
    swarm_key: "{{ swarm_key_text }}"
    state: discovered
  register: members
  no_log: true

- name: Retract this cluster's identity
  peerdiscovery.cluster_discovery.ipfs_identity:
    api_url: http://10.0.0.12:5001
    swarm_key: "{{ swarm_key_text }}"
    owner: Identity private-network-peer-configuration/cluster1-identity
    state: absent
"""

RETURN = r"""
peer_id:
  description: The node's peer id, the publisher of its identity.
  returned: success
  type: str
  sample: QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx
topic:
  description: The pubsub topic of the swarm (derived from the swarm key).
  returned: success
  type: str
  sample: cluster-discovery/v1/identities/5f0c2a3e9b1d4c7a8e6f0b2d4c6a8e0f
cid:
  description: CID of the published identity document or tombstone.
  returned: when O(state=present) or O(state=absent) and something is published
  type: str
  sample: bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku
sequence:
  description: Sequence number of the published document (only grows).
  returned: when O(state=present) or O(state=absent) and something is published
  type: int
  sample: 1796000000000
kubeconfig_withheld:
  description: Why the given kubeconfig was not published (a public swarm key), or empty when it was or none was given.
  returned: when O(state=present)
  type: str
  sample: ""
issued_at:
  description: When the published document was issued (RFC 3339, UTC).
  returned: when O(state=present) and something is published
  type: str
  sample: "2026-11-29T01:00:00Z"
identities:
  description: The latest valid identity of each other member.
  returned: when O(state=discovered)
  type: list
  elements: dict
  contains:
    peer_id: {description: Publisher peer id., type: str, returned: always}
    cid: {description: CID of the document., type: str, returned: always}
    sequence: {description: Its sequence number., type: int, returned: always}
    issued_at: {description: When it was issued., type: str, returned: always}
    name: {description: The member's name., type: str, returned: always}
    description: {description: Its description., type: str, returned: always}
    url: {description: Its API server URL., type: str, returned: always}
    categories: {description: Its categories., type: list, elements: str, returned: always}
    addresses:
      description: Its swarm addresses that reach the member itself (C(.../p2p/<peer_id>)); any other is dropped.
      type: list
      elements: str
      returned: always
    kubernetes_version: {description: Its Kubernetes version., type: str, returned: always}
    kubeconfig:
      description: The kubeconfig it published, opened with the swarm key, checked and in canonical form.
      type: str
      returned: when published
    live: {description: Whether the member answered now or was heard recently., type: bool, returned: always}
    heard_at:
      description: When the member was last heard (UTC, C(YYYY-MM-DDTHH:MM:SSZ)), or null when this node never heard it.
      type: str
      returned: always
removed:
  description: Members whose latest document is a tombstone, with the tombstone's sequence.
  returned: when O(state=discovered)
  type: list
  elements: dict
  sample: [{peer_id: 12D3KooWRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz, sequence: 1795929312345}]
  contains:
    peer_id: {description: The member's peer id., type: str, returned: always}
    sequence: {description: The tombstone's sequence number., type: int, returned: always}
rejected:
  description: Refused announcements and documents, with the reason; they changed nothing.
  returned: when O(state=discovered)
  type: list
  elements: dict
  contains:
    peer_id: {description: The sender., type: str, returned: always}
    reason: {description: Why it was refused., type: str, returned: always}
"""

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.args_common import (
    kubo_arg_spec,
    kubo_client,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FRESH_WITHIN,
    PublishedFields,
    draft_document,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    HAS_DEPENDENCIES,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    IMPORT_ERROR as KUBECONFIG_IMPORT_ERROR,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import HAS_CRYPTOGRAPHY
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_identity import (
    SwarmIdentity,
    results,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import parse

IPFS_IDENTITY_ARG_SPEC = {
    "state": {"type": "str", "choices": ["present", "absent", "discovered"], "default": "present"},
    "swarm_key": {"type": "str", "required": True, "no_log": True},
    "owner": {"type": "str"},
    "name": {"type": "str"},
    "description": {"type": "str", "default": ""},
    "url": {"type": "str", "default": ""},
    "categories": {"type": "list", "elements": "str", "default": []},
    "addresses": {"type": "list", "elements": "str", "default": []},
    "kubernetes_version": {"type": "str", "default": ""},
    "kubeconfig": {"type": "str", "no_log": True},
    "announce": {"type": "bool", "default": True},
    "listen": {"type": "float", "default": 3.0},
    "quiet": {"type": "float", "default": 0.5},
    "fresh_within": {"type": "float", "default": DEFAULT_FRESH_WITHIN},
}


def argspec():
    args = kubo_arg_spec()
    args.update(copy.deepcopy(IPFS_IDENTITY_ARG_SPEC))
    return args


def publish(module, node):
    params = module.params
    fields = PublishedFields(
        name=params["name"], description=params["description"], url=params["url"], categories=params["categories"]
    )
    document = draft_document(
        fields, publisher=node.peer_id, addresses=params["addresses"], kubernetes_version=params["kubernetes_version"]
    )
    outcome = node.publish(
        owner=params["owner"], document=document, kubeconfig=params["kubeconfig"], check_mode=module.check_mode
    )
    if params["announce"] and outcome.published is not None and not module.check_mode:
        node.announce(outcome.published)
    return outcome


def execute_module(module):
    params = module.params
    key = parse(params["swarm_key"])
    module.no_log_values.update(key.sensitive_values())
    with kubo_client(params) as client:
        node = SwarmIdentity(client, key.key)
        result = {"peer_id": node.peer_id, "topic": node.topic}
        if params["state"] == "discovered":
            found, live = node.discover(
                window=params["listen"], quiet=params["quiet"], fresh_within=params["fresh_within"]
            )
            result.update(results(found, live))
            module.exit_json(changed=False, **result)
        if params["state"] == "present":
            outcome = publish(module, node)
        else:
            outcome = node.retract(owner=params["owner"], check_mode=module.check_mode)
            if params["announce"] and outcome.published is not None and not module.check_mode:
                node.announce(outcome.published)
        if outcome.published is not None:
            result.update(cid=outcome.published.cid, sequence=outcome.published.sequence)
        if params["state"] == "present":
            result["kubeconfig_withheld"] = outcome.kubeconfig_withheld or ""
            if outcome.kubeconfig_withheld:
                module.warn(outcome.kubeconfig_withheld)
        if outcome.issued_at:
            result["issued_at"] = outcome.issued_at
    module.exit_json(changed=outcome.changed, **result)


def main():
    module = AnsibleModule(
        argument_spec=argspec(),
        supports_check_mode=True,
        required_if=[("state", "present", ("owner", "name")), ("state", "absent", ("owner",))],
    )
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    if not (HAS_DEPENDENCIES and HAS_CRYPTOGRAPHY):
        module.fail_json(msg=missing_required_lib("PyYAML and cryptography"), exception=KUBECONFIG_IMPORT_ERROR)
    try:
        execute_module(module)
    except CollectionError as err:
        module.fail_json(exception=traceback.format_exc(), **err.fail_kwargs())
    except DocumentError as err:
        module.fail_json(msg=f"Invalid identity for {module.params['owner']}: {err}")
    except ValueError as err:
        module.fail_json(msg=f"Invalid options: {err}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
