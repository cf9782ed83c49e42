# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""A kubo node's place in its swarm: bootstrap list, protected peering, connections.

Private to the collection: may change without notice.

The ``ipfs_swarm`` module's work as "read existing, compute wanted, compare":
:func:`observe` reads the node, :func:`plan` (pure) compares it with a
:class:`SwarmSpec` and says what to write, :func:`apply` writes exactly that.
``changed``, check mode and diff all come from the plan.

Why both ``swarm/peering/add`` and ``Peering.Peers``: kubo's peering subsystem
(protected connections, reconnected with back-off) is in memory only, and is
filled from the config's ``Peering.Peers`` at start-up. So a wanted peer is
written to the config (it survives a restart) and added to the running
subsystem (it takes effect now), then connected with ``swarm/connect`` so the
caller can rely on the connection when the module returns.

The bootstrap list is replaced with one ``config`` write of ``Bootstrap``
(``bootstrap/rm`` followed by ``bootstrap/add`` would leave an empty list
behind if the second call failed); additions alone go through
``bootstrap/add``, which validates them on the node.

Why ``bootstrap_include_peering``: the original controller's bootstrap list
is "actualized when an Identity is published" (seed 000): the members found
on the swarm join it and leave it with them, while the SwarmPool's
``bootstrapNodeAddresses`` always stay. Two roles write the list (the
swarmpool role from the spec, the identity role from the members); if each
wrote its own view, each run would undo the other's. So both state one rule
here: the list is the given addresses plus every peer the node protects
after this run (``Peering.Peers``, as :func:`plan` computes it, so a peering
change of the same run counts), which the identity role keeps equal to the
bootstrap nodes and the live members, and to which the discovery agent adds a
member as soon as it makes or updates its Peer (:func:`protect_members`).

:func:`counters` is the SwarmPool status's two numbers, computed once for
the swarmpool role (the module's ``counters``) and the discovery agent, which
keeps them current between reconciles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    STATUS_BOOTSTRAPS,
    STATUS_CONNECTED,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import (
    AddrInfo,
    ConnInfo,
    KuboClient,
    KuboError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import (
    MultiaddrError,
    PeerAddress,
    canonical,
    group_by_peer,
    parse_peer_address,
    parse_peer_addresses,
)

PEERING_KEY = "Peering.Peers"
BOOTSTRAP_KEY = "Bootstrap"


@dataclass(frozen=True)
class SwarmSpec:
    """What the caller wants; ``None`` leaves that part of the node alone."""

    bootstrap: tuple[PeerAddress, ...] | None = None
    exclusive: bool = False
    peers: tuple[PeerAddress, ...] | None = None
    peers_exclusive: bool = False
    connect: bool = True
    """Dial the peers not connected now; without it kubo's peering subsystem dials them on its own, in the
    background, so a peer that cannot be reached fails nothing."""
    connect_required: str = "all"
    """``all``: a dialled peer that cannot be reached fails the run. ``any``: it is a warning while the node is
    connected to some peer after the run (it is in the swarm through others); only a node left alone fails."""
    bootstrap_include_peering: bool = False
    """The wanted bootstrap list also holds every peer of ``Peering.Peers`` after this run (see the module
    docstring); ignored without ``bootstrap``."""


def spec_from_params(
    *,
    bootstrap: Sequence[str] | None,
    exclusive: bool,
    peers: Sequence[str] | None,
    peers_exclusive: bool,
    connect: bool = True,
    connect_required: str = "all",
    bootstrap_include_peering: bool = False,
) -> SwarmSpec:
    """Validate the module's options; raises MultiaddrError naming the bad address."""
    return SwarmSpec(
        bootstrap=tuple(parse_peer_addresses(bootstrap)) if bootstrap is not None else None,
        exclusive=exclusive,
        peers=tuple(parse_peer_addresses(peers)) if peers is not None else None,
        peers_exclusive=peers_exclusive,
        connect=connect,
        connect_required=connect_required,
        bootstrap_include_peering=bootstrap_include_peering,
    )


@dataclass
class NodeState:
    """What :func:`observe` read from the node."""

    peer_id: str
    addresses: list[str]
    bootstrap: list[str]
    connected: list[ConnInfo]
    peering_config: list[AddrInfo]
    """``Peering.Peers`` from the config file: what a restart brings back."""
    peering_live: list[AddrInfo]
    """``swarm/peering/ls``: what the running node protects now."""

    @property
    def connected_ids(self) -> set[str]:
        return {conn["Peer"] for conn in self.connected if conn.get("Peer")}


def observe(client: KuboClient) -> NodeState:
    info = client.id()
    raw_peering = client.config_get(PEERING_KEY)
    return NodeState(
        peer_id=info.get("ID", ""),
        addresses=list(info.get("Addresses") or []),
        bootstrap=client.bootstrap_list(),
        connected=client.swarm_peers(),
        peering_config=_addr_infos(raw_peering, client),
        peering_live=client.peering_ls(),
    )


def _addr_infos(raw: Any, client: KuboClient) -> list[AddrInfo]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("ID"), str) for entry in raw
    ):
        raise KuboError(
            f"The config of kubo at {client.node} holds a {PEERING_KEY} that is not a list of {{ID, Addrs}}",
            endpoint="/api/v0/config",
            node=client.node,
        )
    return [{"ID": entry["ID"], "Addrs": [str(addr) for addr in entry.get("Addrs") or []]} for entry in raw]


@dataclass
class SwarmPlan:
    """What :func:`apply` will write; every field is derived by :func:`plan` alone."""

    bootstrap_before: list[str]
    bootstrap_after: list[str]
    bootstrap_add: list[str] = field(default_factory=list)
    bootstrap_replace: bool = False
    peering_before: list[AddrInfo] = field(default_factory=list)
    peering_after: list[AddrInfo] = field(default_factory=list)
    write_peering_config: bool = False
    live_add: list[AddrInfo] = field(default_factory=list)
    live_remove: list[str] = field(default_factory=list)
    connect: list[AddrInfo] = field(default_factory=list)
    connect_required: str = "all"
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.bootstrap_add
            or self.bootstrap_replace
            or self.write_peering_config
            or self.live_add
            or self.live_remove
            or self.connect
        )


def _same_addrs(left: Sequence[str], right: Sequence[str]) -> bool:
    return {canonical(addr) for addr in left} == {canonical(addr) for addr in right}


def plan(state: NodeState, spec: SwarmSpec) -> SwarmPlan:
    """Compare the node with the spec. Pure: no I/O."""
    result = SwarmPlan(
        bootstrap_before=list(state.bootstrap),
        bootstrap_after=list(state.bootstrap),
        peering_before=[_copy(entry) for entry in state.peering_config],
        peering_after=[_copy(entry) for entry in state.peering_config],
        connect_required=spec.connect_required,
    )
    # Peering first: with bootstrap_include_peering the bootstrap list follows the peering after this run.
    _plan_peering(state, spec, result)
    _plan_bootstrap(state, spec, result)
    return result


def _copy(entry: AddrInfo) -> AddrInfo:
    return {"ID": entry["ID"], "Addrs": list(entry["Addrs"])}


def _plan_bootstrap(state: NodeState, spec: SwarmSpec, result: SwarmPlan) -> None:
    if spec.bootstrap is None:
        return
    own = [address for address in spec.bootstrap if address.peer_id == state.peer_id]
    if own:
        # One bootstrap list for every member of a swarm lists each member too.
        result.warnings.append(
            f"Skipped {state.peer_id} in bootstrap: it is this node's own peer id, and a node does not bootstrap"
            " from itself"
        )
    wanted = [address.text for address in spec.bootstrap if address.peer_id != state.peer_id]
    if spec.bootstrap_include_peering:
        listed = set(wanted)
        for text in _peering_bootstrap(result.peering_after, own=state.peer_id, warnings=result.warnings):
            if text not in listed:
                listed.add(text)
                wanted.append(text)
    current = {canonical(entry) for entry in state.bootstrap}
    if spec.exclusive:
        if current != set(wanted) or len(state.bootstrap) != len(wanted):
            result.bootstrap_replace = True
            result.bootstrap_after = wanted
    else:
        missing = [entry for entry in wanted if entry not in current]
        if missing:
            result.bootstrap_add = missing
            result.bootstrap_after = list(state.bootstrap) + missing


def _peering_bootstrap(entries: Sequence[AddrInfo], *, own: str, warnings: list[str]) -> list[str]:
    """Each transport of each protected peer as a bootstrap address ``<transport>/p2p/<id>`` (canonical).

    The node's own id is left out silently (the peers option already warned about it). kubo refuses to start
    on a bootstrap entry it cannot parse, so a ``Peering.Peers`` transport that does not parse (written there
    by hand) is left out with a warning rather than copied into ``Bootstrap``.
    """
    addresses: list[str] = []
    for entry in entries:
        if entry["ID"] == own:
            continue
        for transport in entry["Addrs"]:
            text = f"{transport}/p2p/{entry['ID']}"
            try:
                addresses.append(parse_peer_address(text).text)
            except MultiaddrError as err:
                warnings.append(f"Left {text} of {PEERING_KEY} out of the bootstrap list: {err.msg}")
    return addresses


def _plan_peering(state: NodeState, spec: SwarmSpec, result: SwarmPlan) -> None:
    if spec.peers is None:
        return
    wanted = group_by_peer(spec.peers)
    if state.peer_id in wanted:
        result.warnings.append(
            f"Skipped {state.peer_id} in peers: it is this node's own peer id, and a node does not peer with itself"
        )
        del wanted[state.peer_id]

    # The config entry of every listed peer holds its listed transports; with
    # peers_exclusive exactly those, otherwise also those it already had.
    after: list[AddrInfo] = []
    for entry in state.peering_config:
        if entry["ID"] in wanted:
            listed = wanted[entry["ID"]]
            known = {canonical(addr) for addr in listed}
            kept = [] if spec.peers_exclusive else [addr for addr in entry["Addrs"] if canonical(addr) not in known]
            after.append({"ID": entry["ID"], "Addrs": kept + listed})
        elif not spec.peers_exclusive:
            after.append(_copy(entry))
    present = {entry["ID"] for entry in after}
    after.extend({"ID": peer_id, "Addrs": list(addrs)} for peer_id, addrs in wanted.items() if peer_id not in present)

    before_map = {entry["ID"]: entry["Addrs"] for entry in state.peering_config}
    after_map = {entry["ID"]: entry["Addrs"] for entry in after}
    if before_map.keys() != after_map.keys() or any(
        not _same_addrs(before_map[key], after_map[key]) for key in after_map
    ):
        result.write_peering_config = True
        result.peering_after = after

    live_map = {entry["ID"]: entry["Addrs"] for entry in state.peering_live}
    for peer_id in wanted:
        if peer_id not in live_map or not _same_addrs(live_map[peer_id], after_map[peer_id]):
            result.live_add.append({"ID": peer_id, "Addrs": list(after_map[peer_id])})
    if spec.peers_exclusive:
        result.live_remove = [peer_id for peer_id in live_map if peer_id not in wanted and peer_id != state.peer_id]

    connected = state.connected_ids
    if spec.connect:
        result.connect = [
            {"ID": peer_id, "Addrs": list(addrs)} for peer_id, addrs in wanted.items() if peer_id not in connected
        ]


def _full_addresses(entry: AddrInfo) -> list[str]:
    return [f"{addr}/p2p/{entry['ID']}" for addr in entry["Addrs"]]


def apply(client: KuboClient, plan: SwarmPlan) -> None:
    """Write what the plan says, in an order that never loses what was stored.

    Raises KuboError, its message prefixed with what failed and its ``changed``
    field saying whether anything was written before the failure (so a failed
    task still reports truthfully that the node changed).
    """
    wrote = False
    try:
        if plan.bootstrap_replace:
            client.config_set(BOOTSTRAP_KEY, plan.bootstrap_after)
            wrote = True
        elif plan.bootstrap_add:
            client.bootstrap_add(*plan.bootstrap_add)
            wrote = True
    except KuboError as err:
        raise _partial(err.with_context("Failed to update the bootstrap list"), changed=wrote) from err
    try:
        if plan.write_peering_config:
            client.config_set(PEERING_KEY, plan.peering_after)
            wrote = True
        if plan.live_remove:
            client.peering_rm(*plan.live_remove)
            wrote = True
        for entry in plan.live_add:
            client.peering_add(*_full_addresses(entry))
            wrote = True
    except KuboError as err:
        raise _partial(err.with_context("Failed to update the protected peering"), changed=wrote) from err

    failures: list[KuboError] = []
    for entry in plan.connect:
        addresses = _full_addresses(entry)
        try:
            client.swarm_connect(*addresses)
            wrote = True
        except KuboError as err:
            failures.append(err.with_context(f"Failed to connect to {', '.join(addresses)}"))
    if failures and plan.connect_required == "any" and _has_connections(client):
        # In the swarm through other peers: the swarm works, and kubo keeps dialling the protected peers.
        plan.warnings.extend(f"{failure} (the node is connected to other peers)" for failure in failures)
        return
    if failures:
        first = failures[0]
        if len(failures) > 1:
            first = first.with_context(f"{len(failures)} of {len(plan.connect)} peers could not be connected")
        raise _partial(first, changed=wrote)


def _has_connections(client: KuboClient) -> bool:
    try:
        return bool(client.swarm_peers())
    except KuboError:
        return False


def _partial(err: KuboError, *, changed: bool) -> KuboError:
    err.fields["changed"] = changed
    return err


# -- what the module returns ---------------------------------------------------


def peering_view(entries: Sequence[AddrInfo]) -> list[dict[str, Any]]:
    return [{"peer_id": entry["ID"], "addresses": list(entry["Addrs"])} for entry in entries]


def connected_view(connected: Sequence[ConnInfo]) -> list[dict[str, Any]]:
    return sorted(
        ({"peer_id": conn.get("Peer", ""), "address": conn.get("Addr", "")} for conn in connected),
        key=lambda item: (item["peer_id"], item["address"]),
    )


def predicted_connections(state: NodeState, plan: SwarmPlan) -> list[ConnInfo]:
    """Connections after the plan, as check mode predicts them."""
    predicted = list(state.connected)
    predicted.extend(
        {"Peer": entry["ID"], "Addr": entry["Addrs"][0] if entry["Addrs"] else ""} for entry in plan.connect
    )
    return predicted


def counters(bootstrap: Sequence[str], connections: Sequence[ConnInfo]) -> dict[str, int]:
    """The SwarmPool status's counters of a node: distinct peers, not entries.

    kubo lists one bootstrap entry per address and one connection per transport, so a peer with two
    addresses, or connected twice (each side dialled the other), would otherwise count twice. A bootstrap
    entry naming no peer (kubo's ``auto`` placeholder) is not a peer and is not counted.
    """
    bootstrap_peers: set[str] = set()
    for entry in bootstrap:
        try:
            bootstrap_peers.add(parse_peer_address(entry).peer_id)
        except MultiaddrError:
            continue
    connected = {conn.get("Peer") for conn in connections if conn.get("Peer")}
    # Under the SwarmPool status's names, as the original controller printed them (seed 000).
    return {STATUS_BOOTSTRAPS: len(bootstrap_peers), STATUS_CONNECTED: len(connected)}


def diff(plan: SwarmPlan) -> dict[str, dict[str, Any]]:
    return {
        "before": {"bootstrap": list(plan.bootstrap_before), "peering": peering_view(plan.peering_before)},
        "after": {"bootstrap": list(plan.bootstrap_after), "peering": peering_view(plan.peering_after)},
    }


def ensure(client: KuboClient, spec: SwarmSpec, *, check_mode: bool) -> tuple[SwarmPlan, dict[str, Any]]:
    """Observe, plan, apply (unless check mode); return the plan and the module's result fields."""
    state = observe(client)
    the_plan = plan(state, spec)
    if check_mode or not the_plan.changed:
        connected = predicted_connections(state, the_plan)
        bootstrap = the_plan.bootstrap_after
        peering = the_plan.peering_after
    else:
        apply(client, the_plan)
        # Read back what the node now holds rather than echo the plan.
        bootstrap = client.bootstrap_list()
        peering = _addr_infos(client.config_get(PEERING_KEY), client)
        connected = client.swarm_peers()
    return the_plan, {
        "peer_id": state.peer_id,
        "addresses": state.addresses,
        "bootstrap": bootstrap,
        "connected_peers": connected_view(connected),
        "peering": peering_view(peering),
        "counters": counters(bootstrap, connected),
    }


def protect_members(client: KuboClient, addresses: Sequence[str]) -> SwarmPlan:
    """Protect the members at ``addresses`` and bootstrap from them, by the rule above; nothing is removed.

    What the discovery agent applies between discovery rounds, for the live members whose Peer it made or
    updated: a member is kept connected and bootstrapped from when its Identity is heard, not at the next round.
    Who left is the round's to drop (ipfs_swarm with ``peers_exclusive``): only it holds the whole list. kubo's
    peering subsystem dials in the background, so an unreachable member fails nothing. Raises MultiaddrError for
    an address that does not parse, KuboError as :func:`apply`.
    """
    spec = spec_from_params(
        bootstrap=[],
        exclusive=False,
        peers=addresses,
        peers_exclusive=False,
        connect=False,
        bootstrap_include_peering=True,
    )
    return ensure(client, spec, check_mode=False)[0]
