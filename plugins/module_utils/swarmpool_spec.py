# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""What one entry of a SwarmPool's ``spec.swarms`` must hold before its node is touched.

Private to the collection: may change without notice.

The CRD refuses most of this at admission (patterns, ranges, its CEL rules);
the swarmpool role checks again, through the ``swarmpool_swarm_problem``
filter, because a SwarmPool stored before the CRD had a rule, or written
with validation off, reaches the role all the same. The first fault found
becomes the SwarmPool's Failure condition, worded for the user who wrote it.

The entry is read as the operator passes it to the role: snake_case keys
(``ip_fs_version``, ``network.swarm_port``, ``swarm_definition``), the role's
defaults merged in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    statefulset_name,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo_release import (
    MalformedRelease,
    choose,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import (
    MultiaddrError,
    parse_peer_address,
)

# A Kubernetes object name of one DNS label (what the CRD's pattern says).
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
# The StatefulSet's name becomes its Pod's hostname label, <name>-0, which must fit 63
# characters with the controller-revision hash label Kubernetes adds; 52 leaves that room.
MAX_STATEFULSET_NAME = 52
# A bootstrap node is dialled over TCP, the one transport every node listens on.
_TCP_TRANSPORT = re.compile(r"/(?:ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/[0-9]+")


def swarm_problem(swarm: Mapping[str, Any], pool: str) -> str:
    """The first fault of one swarm entry of SwarmPool ``pool``, or ``''`` when it has none."""
    name = swarm.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
        return "the swarm name must be a DNS label (lowercase letters, digits and '-')"
    if len(statefulset_name(pool, name)) > MAX_STATEFULSET_NAME:
        return (
            f"the SwarmPool and swarm names together must not exceed {MAX_STATEFULSET_NAME - 4} characters"
            " (they name the StatefulSet <pool>-<swarm>-ss)"
        )
    try:
        choose(swarm.get("ip_fs_version"))
    except MalformedRelease as err:
        return str(err)
    network = swarm.get("network") or {}
    if ("load_balancer" in network) == ("traefik" in network):
        return "network must give exactly one of loadBalancer and traefik"
    ports = [_port(network.get("swarm_port")), _port(network.get("api_port"))]
    if None in ports or ports[0] == ports[1]:
        return "swarmPort and apiPort must be two different ports between 1 and 65535"
    definition = swarm.get("swarm_definition") or {}
    for address in definition.get("bootstrap_node_addresses") or []:
        problem = bootstrap_address_problem(address)
        if problem:
            return problem
    return ""


def bootstrap_address_problem(address: object) -> str:
    """Why ``address`` cannot be a bootstrap node's address, or ``''``."""
    wanted = (
        f"bootstrap address {address} must be a TCP multiaddr ending in /p2p/<peer id>,"
        " as the Addresses of a SwarmPool's status"
    )
    try:
        parsed = parse_peer_address(address)  # type: ignore[arg-type]  # anything a user wrote is checked
    except MultiaddrError as err:
        return f"{wanted} ({err.problem})"
    if not _TCP_TRANSPORT.fullmatch(parsed.transport):
        return wanted
    return ""


def _port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        port = int(value)  # type: ignore[call-overload]  # the role passes ports as int or numeric text
    except (TypeError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None
