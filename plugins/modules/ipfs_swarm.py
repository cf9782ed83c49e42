#!/usr/bin/python
# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipfs_swarm
short_description: Manage a kubo node's bootstrap list, protected peering and connections
version_added: 0.1.0
author:
  - cluster-discovery contributors (@irt-saintexupery)
description:
  - Reports a kubo node's peer id, addresses, bootstrap list, connected peers and protected peering, through its RPC
    API at O(api_url).
  - With O(bootstrap), ensures the node's bootstrap list holds those addresses (O(exclusive=true) makes it exactly
    those); with O(bootstrap_include_peering=true), also the peers the node protects.
  - With O(peers), ensures the node is connected to those peers now (C(swarm/connect)), and keeps them connected;
    they join kubo's peering subsystem (protected connections, reconnected with back-off) both in the running node
    and in the config's C(Peering.Peers), since kubo's C(swarm/peering/add) alone is lost at restart.
  - Without O(bootstrap) or O(peers), only reports.
  - Returns the counters of a SwarmPool's status (distinct bootstrap peers, distinct connected peers), computed as
    the discovery agent computes them.
  - Supports check mode (nothing is written; the result is the prediction) and diff mode.
options:
  bootstrap:
    description:
      - Bootstrap addresses, each a multiaddr ending in C(/p2p/<peer id>), for example
        C(/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW...).
      - Omit to leave the bootstrap list alone; with O(exclusive=true), an empty list empties it.
      - C(/ipfs/<peer id>) is read as C(/p2p/<peer id>), the form kubo prints.
      - The node's own peer id is skipped with a warning (one list can serve every member of a swarm).
    type: list
    elements: str
  exclusive:
    description:
      - If V(true), the bootstrap list becomes exactly O(bootstrap) (one write of the config's C(Bootstrap)).
      - If V(false), missing addresses are added and the others kept.
      - Ignored without O(bootstrap).
    type: bool
    default: false
  bootstrap_include_peering:
    description:
      - If V(true), the wanted bootstrap list is O(bootstrap) plus, for every peer the node protects after this run
        (the config's C(Peering.Peers) once O(peers) is applied, so a peering change of the same task counts), each
        of its addresses as C(<address>/p2p/<peer id>); the node's own peer id is left out.
      - With O(exclusive=true) the list becomes exactly that, so a peer dropped from the peering (for example by
        O(peers_exclusive=true)) leaves the bootstrap list too, while O(bootstrap) always stays.
      - This is how the swarmpool and identity roles share the list without undoing each other's work. The
        SwarmPool's C(bootstrapNodeAddresses) always stay, and the members the identity role keeps protected join it
        and leave it with them (the original controller's bootstrap list is updated when an Identity is published).
      - A C(Peering.Peers) address that is not a valid multiaddr is left out with a warning (kubo would refuse to
        start with it in C(Bootstrap)).
      - Ignored without O(bootstrap).
    type: bool
    default: false
  peers:
    description:
      - Peers to connect to and protect, each a multiaddr ending in C(/p2p/<peer id>); several addresses of one peer
        are grouped.
      - The node's own peer id is skipped with a warning.
      - Omit to leave peering and connections alone.
    type: list
    elements: str
  peers_exclusive:
    description:
      - If V(true), peers not in O(peers) are dropped from the peering subsystem and C(Peering.Peers) (they are not
        disconnected), and each listed peer's addresses become exactly those listed.
      - If V(false), listed addresses are added to what the node already has.
      - Ignored without O(peers).
    type: bool
    default: false
  connect:
    description:
      - If V(true), peers of O(peers) not connected now are dialled (C(swarm/connect)) before the module returns,
        and one that cannot be reached fails the task.
      - If V(false), they are only protected; kubo's peering subsystem dials them in the background and keeps
        retrying, and an unreachable peer fails nothing. For peers named by others (members of a swarm, who may
        be gone or lie about their addresses).
      - Ignored without O(peers).
    type: bool
    default: true
  connect_required:
    description:
      - With O(connect=true), which failures to dial fail the task.
      - V(all) fails it when any peer of O(peers) cannot be reached.
      - V(any) fails it only when the node is connected to no peer at all after the run; a peer that cannot be
        reached while the node is in the swarm through others is a warning (kubo keeps dialling it). For bootstrap
        nodes, which may leave a swarm that goes on without them.
    type: str
    choices: [all, any]
    default: all
extends_documentation_fragment:
  - peerdiscovery.cluster_discovery.kubo
  - peerdiscovery.cluster_discovery.attributes
attributes:
  check_mode:
    support: full
    details: Addresses are checked for form only; kubo parses them fully on a real run.
  diff_mode:
    support: full
    details: The diff shows the bootstrap list and C(Peering.Peers) before and after.
  idempotent:
    support: full
seealso:
  - module: peerdiscovery.cluster_discovery.swarm_key
  - name: kubo RPC API
    description: The calls this module makes.
    link: https://docs.ipfs.tech/reference/kubo/rpc/
notes:
  - A peer that refuses the connection (for example because it holds another swarm key) fails the module (with
    O(connect_required=any), only when the node is connected to nobody), after the bootstrap list and peering were
    written (the failed result then reports C(changed=true)); kubo keeps trying to
    reach protected peers in the background.
"""

EXAMPLES = r"""
- name: Read the node's identity, addresses and peers
  peerdiscovery.cluster_discovery.ipfs_swarm:
    api_url: http://127.0.0.1:5001
  register: node

- name: Make the swarm's bootstrap node the only bootstrap address, and stay connected to it
  peerdiscovery.cluster_discovery.ipfs_swarm:
    api_url: http://cluster2-private-api.private-network-peer-configuration:5001
    bootstrap:
      - /ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx
    exclusive: true
    peers:
      - /ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx

- name: Keep exactly these members protected, and bootstrap from them and the swarm's bootstrap node
  peerdiscovery.cluster_discovery.ipfs_swarm:
    api_url: http://127.0.0.1:5001
    peers: "{{ swarm_members }}"
    peers_exclusive: true
    bootstrap:
      - /ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx
    exclusive: true
    bootstrap_include_peering: true
"""

RETURN = r"""
peer_id:
  description: The node's peer id.
  returned: always
  type: str
  sample: QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz
addresses:
  description: The node's announced addresses, each ending in C(/p2p/<peer id>).
  returned: always
  type: list
  elements: str
  sample: ["/ip4/34.78.69.228/tcp/4001/p2p/QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"]
bootstrap:
  description: The bootstrap list after the run (predicted in check mode).
  returned: always
  type: list
  elements: str
  sample: ["/ip4/104.155.27.210/tcp/4001/p2p/QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"]
connected_peers:
  description:
    - Open connections after the run (predicted in check mode), one per connection, so a peer connected through two
      transports appears twice (RV(counters) counts peers).
  returned: always
  type: list
  elements: dict
  contains:
    peer_id:
      description: The connected peer.
      type: str
    address:
      description: The transport address of the connection.
      type: str
  sample: [{"peer_id": "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx", "address": "/ip4/104.155.27.210/tcp/4001"}]
peering:
  description: The config's C(Peering.Peers) after the run (predicted in check mode), what a restart keeps connected.
  returned: always
  type: list
  elements: dict
  contains:
    peer_id:
      description: The protected peer.
      type: str
    addresses:
      description: Its transport addresses.
      type: list
      elements: str
  sample: [{"peer_id": "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx", "addresses": ["/ip4/104.155.27.210/tcp/4001"]}]
counters:
  description:
    - What a SwarmPool's status reports of the node after the run (predicted in check mode), under the status's own
      names. Peers are counted, not entries; a bootstrap entry naming no peer (kubo's C(auto)) is not counted.
    - The discovery agent computes the same counters with the same code between reconciles.
  returned: always
  type: dict
  contains:
    Number of bootstraps:
      description: Distinct peers of the bootstrap list.
      type: int
    Number of connected peers:
      description: Distinct peers with at least one open connection.
      type: int
  sample: {"Number of bootstraps": 1, "Number of connected peers": 2}
diff:
  description: The bootstrap list and C(Peering.Peers) before and after.
  returned: when diff mode is on
  type: dict
  contains:
    before:
      description: C(bootstrap) and C(peering) before the run.
      type: dict
    after:
      description: C(bootstrap) and C(peering) after the run.
      type: dict
endpoint:
  description: The RPC endpoint that failed.
  returned: on a failed RPC call
  type: str
  sample: /api/v0/swarm/connect
node:
  description: The RPC API URL of the node that failed the call.
  returned: on a failed RPC call
  type: str
  sample: http://127.0.0.1:5001
status:
  description: The HTTP status kubo answered.
  returned: on a failed RPC call that kubo answered
  type: int
  sample: 500
kubo_message:
  description: kubo's own error message.
  returned: on a failed RPC call that kubo answered with an error document
  type: str
  sample: "connect QmZ9JTRZ... failure: failed to dial: ..."
"""

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.args_common import (
    kubo_arg_spec,
    kubo_client,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    HAS_REQUESTS,
    REQUESTS_IMPORT_ERROR,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm import (
    diff,
    ensure,
    spec_from_params,
)

IPFS_SWARM_ARG_SPEC = {
    "bootstrap": {"type": "list", "elements": "str"},
    "exclusive": {"type": "bool", "default": False},
    "peers": {"type": "list", "elements": "str"},
    "peers_exclusive": {"type": "bool", "default": False},
    "connect": {"type": "bool", "default": True},
    "connect_required": {"type": "str", "choices": ["all", "any"], "default": "all"},
    "bootstrap_include_peering": {"type": "bool", "default": False},
}


def argspec():
    args = kubo_arg_spec()
    args.update(copy.deepcopy(IPFS_SWARM_ARG_SPEC))
    return args


def execute_module(module):
    params = module.params
    spec = spec_from_params(
        bootstrap=params["bootstrap"],
        exclusive=params["exclusive"],
        peers=params["peers"],
        peers_exclusive=params["peers_exclusive"],
        connect=params["connect"],
        connect_required=params["connect_required"],
        bootstrap_include_peering=params["bootstrap_include_peering"],
    )
    with kubo_client(params) as client:
        plan, result = ensure(client, spec, check_mode=module.check_mode)
    for warning in plan.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff(plan)
    module.exit_json(changed=plan.changed, **result)


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"), exception=REQUESTS_IMPORT_ERROR)
    try:
        execute_module(module)
    except CollectionError as err:
        module.fail_json(exception=traceback.format_exc(), **err.fail_kwargs())
    except ValueError as err:
        module.fail_json(msg=f"Invalid kubo connection options: {err}", exception=traceback.format_exc())


if __name__ == "__main__":
    main()
