"""ipfs_swarm's decisions: bootstrap list, protected peering and connections, as pure functions.

Covers plugins/module_utils/swarm.py: ``plan`` (what to write, hence
``changed``, check mode's prediction and the diff) for every combination of
bootstrap/exclusive and peers/peers_exclusive against a node's observed state,
and bootstrap_include_peering (the bootstrap list follows the peering after
the run, so the swarmpool and identity roles do not undo each other);
``counters`` (the SwarmPool status's numbers: distinct peers, not entries);
``apply``'s order and error wording, ``ensure`` in check mode, and
``protect_members`` (the agent's additions between rounds), with a recording
stand-in for the client. Real kubo behaviour is covered by
tests/integration/modules/test_ipfs_swarm.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kubo import AddrInfo, ConnInfo, KuboError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import MultiaddrError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm import (
    NodeState,
    SwarmPlan,
    SwarmSpec,
    apply,
    counters,
    diff,
    ensure,
    plan,
    protect_members,
    spec_from_params,
)

SELF = "12D3KooWMtK5wfiGV8CXA3sVXeEUXUknHPuxB8gAAPCprvhHTMhq"
A = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
B = "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"
C = "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"


def addr(peer: str, host: str = "10.0.0.1", port: int = 4001, *, spelling: str = "p2p") -> str:
    return f"/ip4/{host}/tcp/{port}/{spelling}/{peer}"


def state(
    *,
    bootstrap: list[str] | None = None,
    connected: list[str] | None = None,
    config: list[AddrInfo] | None = None,
    live: list[AddrInfo] | None = None,
) -> NodeState:
    return NodeState(
        peer_id=SELF,
        addresses=[addr(SELF, "127.0.0.1")],
        bootstrap=list(bootstrap or []),
        connected=[ConnInfo(Peer=peer, Addr="/ip4/10.0.0.9/tcp/4001") for peer in connected or []],
        peering_config=list(config or []),
        peering_live=list(live or []),
    )


def spec(
    *,
    bootstrap: list[str] | None = None,
    exclusive: bool = False,
    peers: list[str] | None = None,
    peers_exclusive: bool = False,
    include_peering: bool = False,
    connect: bool = True,
) -> SwarmSpec:
    return spec_from_params(
        bootstrap=bootstrap,
        exclusive=exclusive,
        peers=peers,
        peers_exclusive=peers_exclusive,
        connect=connect,
        bootstrap_include_peering=include_peering,
    )


# -- reporting only ---------------------------------------------------------------


def test_nothing_wanted_changes_nothing_and_reports_the_node_as_it_is() -> None:
    node = state(bootstrap=[addr(A)], config=[{"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}])
    result = plan(node, SwarmSpec())
    assert not result.changed
    assert result.bootstrap_after == [addr(A)]
    assert result.peering_after == node.peering_config


# -- bootstrap ----------------------------------------------------------------------


def test_missing_bootstrap_addresses_are_added_and_the_others_kept() -> None:
    result = plan(state(bootstrap=["auto", addr(A)]), spec(bootstrap=[addr(A), addr(B, "10.0.0.2")]))
    assert result.changed
    assert result.bootstrap_add == [addr(B, "10.0.0.2")]
    assert not result.bootstrap_replace
    assert result.bootstrap_after == ["auto", addr(A), addr(B, "10.0.0.2")]


def test_a_bootstrap_address_present_in_the_legacy_spelling_counts_as_present() -> None:
    result = plan(state(bootstrap=[addr(A, spelling="ipfs")]), spec(bootstrap=[addr(A)]))
    assert not result.changed


def test_exclusive_replaces_the_list_with_exactly_the_wanted_addresses() -> None:
    result = plan(state(bootstrap=["auto", addr(A)]), spec(bootstrap=[addr(B)], exclusive=True))
    assert result.bootstrap_replace
    assert result.bootstrap_after == [addr(B)]


def test_exclusive_with_the_same_addresses_in_another_order_changes_nothing() -> None:
    node = state(bootstrap=[addr(B), addr(A, spelling="ipfs")])
    assert not plan(node, spec(bootstrap=[addr(A), addr(B)], exclusive=True)).changed


def test_exclusive_with_an_empty_list_empties_the_bootstrap_list() -> None:
    result = plan(state(bootstrap=[addr(A)]), spec(bootstrap=[], exclusive=True))
    assert result.bootstrap_replace
    assert result.bootstrap_after == []


def test_an_empty_list_without_exclusive_changes_nothing() -> None:
    assert not plan(state(bootstrap=[addr(A)]), spec(bootstrap=[])).changed


# -- peering --------------------------------------------------------------------------


def test_a_new_peer_is_persisted_protected_now_and_connected() -> None:
    result = plan(state(), spec(peers=[addr(A)]))
    assert result.write_peering_config
    assert result.peering_after == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]
    assert result.live_add == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]
    assert result.connect == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]


def test_a_peer_persisted_protected_and_connected_changes_nothing() -> None:
    entry: AddrInfo = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    node = state(config=[entry], live=[entry], connected=[A])
    result = plan(node, spec(peers=[addr(A, spelling="ipfs")]))
    assert not result.changed
    assert diff(result)["before"] == diff(result)["after"]


def test_a_persisted_peer_missing_from_the_running_node_is_only_added_to_it() -> None:
    entry: AddrInfo = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    result = plan(state(config=[entry], connected=[A]), spec(peers=[addr(A)]))
    assert result.changed
    assert not result.write_peering_config
    assert result.live_add == [entry]
    assert not result.connect


def test_a_protected_peer_that_is_not_connected_is_only_connected() -> None:
    entry: AddrInfo = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    result = plan(state(config=[entry], live=[entry]), spec(peers=[addr(A)]))
    assert result.changed
    assert (result.write_peering_config, result.live_add) == (False, [])
    assert result.connect == [entry]


def test_without_peers_exclusive_listed_addresses_are_added_and_other_peers_kept() -> None:
    node = state(
        config=[{"ID": A, "Addrs": ["/ip4/10.0.0.5/tcp/4001"]}, {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}],
        connected=[A, B],
    )
    result = plan(node, spec(peers=[addr(A)]))
    assert result.peering_after == [
        {"ID": A, "Addrs": ["/ip4/10.0.0.5/tcp/4001", "/ip4/10.0.0.1/tcp/4001"]},
        {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]},
    ]
    assert not result.live_remove


def test_peers_exclusive_drops_unlisted_peers_and_makes_addresses_exact() -> None:
    node = state(
        config=[{"ID": A, "Addrs": ["/ip4/10.0.0.5/tcp/4001"]}, {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}],
        live=[{"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}, {"ID": C, "Addrs": ["/ip4/10.0.0.3/tcp/4001"]}],
        connected=[A, B, C],
    )
    result = plan(node, spec(peers=[addr(A)], peers_exclusive=True))
    assert result.peering_after == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]
    assert sorted(result.live_remove) == sorted([B, C])
    assert result.live_add == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}]
    assert not result.connect


def test_several_addresses_of_one_peer_make_one_entry() -> None:
    result = plan(state(), spec(peers=[addr(A), addr(A, "10.0.0.7"), addr(A, spelling="ipfs")]))
    assert result.peering_after == [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001", "/ip4/10.0.0.7/tcp/4001"]}]
    assert len(result.connect) == 1


def test_the_nodes_own_peer_id_is_skipped_with_a_warning() -> None:
    result = plan(state(), spec(peers=[addr(SELF, "127.0.0.1"), addr(A)]))
    assert [entry["ID"] for entry in result.peering_after] == [A]
    assert [entry["ID"] for entry in result.connect] == [A]
    assert len(result.warnings) == 1 and SELF in result.warnings[0]


def test_the_nodes_own_address_is_left_out_of_its_bootstrap_list_with_a_warning() -> None:
    result = plan(state(), spec(bootstrap=[addr(SELF, "127.0.0.1"), addr(A)], exclusive=True))
    assert result.bootstrap_after == [addr(A)]
    assert len(result.warnings) == 1 and SELF in result.warnings[0] and "bootstrap" in result.warnings[0]


def test_the_diff_shows_bootstrap_and_persisted_peering_before_and_after() -> None:
    result = plan(state(bootstrap=[addr(B)]), spec(bootstrap=[addr(A)], exclusive=True, peers=[addr(A)]))
    assert diff(result) == {
        "before": {"bootstrap": [addr(B)], "peering": []},
        "after": {
            "bootstrap": [addr(A)],
            "peering": [{"peer_id": A, "addresses": ["/ip4/10.0.0.1/tcp/4001"]}],
        },
    }


def test_a_malformed_peer_is_refused_before_anything_is_planned() -> None:
    with pytest.raises(MultiaddrError, match="must end with /p2p/<peer id>"):
        spec(peers=["/ip4/10.0.0.1/tcp/4001"])


# -- apply and ensure, with a recording client ------------------------------------------


class Recorder:
    """Records the client calls apply() and ensure() make; answers reads from a NodeState."""

    node = "http://127.0.0.1:5001"

    def __init__(self, observed: NodeState, *, refuse: frozenset[str] = frozenset()) -> None:
        self.observed = observed
        self.refuse = refuse
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    # reads
    def id(self) -> dict[str, Any]:
        return {"ID": self.observed.peer_id, "Addresses": self.observed.addresses}

    def config_get(self, key: str) -> Any:
        return self.observed.peering_config or None

    def bootstrap_list(self) -> list[str]:
        return self.observed.bootstrap

    def swarm_peers(self) -> list[ConnInfo]:
        return self.observed.connected

    def peering_ls(self) -> list[AddrInfo]:
        return self.observed.peering_live

    # writes
    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def config_set(self, key: str, value: Any) -> None:
        self._record("config_set", key, value)
        if key in self.refuse:
            raise KuboError("refused", endpoint="/api/v0/config", node=self.node, status=500)

    def bootstrap_add(self, *peers: str) -> None:
        self._record("bootstrap_add", *peers)

    def peering_add(self, *addresses: str) -> None:
        self._record("peering_add", *addresses)

    def peering_rm(self, *ids: str) -> None:
        self._record("peering_rm", *ids)

    def swarm_connect(self, *addresses: str) -> None:
        self._record("swarm_connect", *addresses)
        if any(address.endswith(peer) for address in addresses for peer in self.refuse):
            raise KuboError(
                "kubo at http://127.0.0.1:5001 answered /api/v0/swarm/connect with HTTP 500: failure: handshake",
                endpoint="/api/v0/swarm/connect",
                node="http://127.0.0.1:5001",
                status=500,
                kubo_message="failure: handshake",
            )


def test_apply_writes_bootstrap_then_config_then_running_peering_then_connects() -> None:
    node = state(live=[{"ID": C, "Addrs": ["/ip4/10.0.0.3/tcp/4001"]}])
    the_plan = plan(node, spec(bootstrap=[addr(A)], exclusive=True, peers=[addr(A)], peers_exclusive=True))
    client = Recorder(node)
    apply(client, the_plan)  # type: ignore[arg-type]
    assert [name for name, _ in client.calls] == [
        "config_set",
        "config_set",
        "peering_rm",
        "peering_add",
        "swarm_connect",
    ]
    assert client.calls[0][1] == ("Bootstrap", [addr(A)])
    assert client.calls[1][1] == ("Peering.Peers", [{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}])
    assert client.calls[2][1] == (C,)
    assert client.calls[3][1] == (addr(A),)


def test_a_refused_connection_fails_naming_the_peer_and_kubos_reason_after_trying_all() -> None:
    node = state()
    the_plan = plan(node, spec(peers=[addr(A), addr(B, "10.0.0.2")]))
    client = Recorder(node, refuse=frozenset({A}))
    with pytest.raises(KuboError) as caught:
        apply(client, the_plan)  # type: ignore[arg-type]
    assert caught.value.msg.startswith(f"Failed to connect to {addr(A)}: kubo at http://127.0.0.1:5001 answered")
    assert caught.value.status == 500
    assert caught.value.fields["changed"] is True  # the peering was written before the refusal
    assert [args for name, args in client.calls if name == "swarm_connect"] == [(addr(A),), (addr(B, "10.0.0.2"),)]


def test_with_any_required_an_unreachable_peer_is_a_warning_while_the_node_is_connected_to_others() -> None:
    """A SwarmPool's bootstrap node may leave once the cluster has joined (seed 000): its run must not fail."""
    node = state(connected=[C])
    wanted = spec_from_params(
        bootstrap=None, exclusive=False, peers=[addr(A)], peers_exclusive=False, connect_required="any"
    )
    the_plan = plan(node, wanted)
    apply(Recorder(node, refuse=frozenset({A})), the_plan)  # type: ignore[arg-type]
    [warning] = the_plan.warnings
    assert warning.startswith(f"Failed to connect to {addr(A)}: ") and "connected to other peers" in warning


def test_with_any_required_a_node_left_alone_still_fails() -> None:
    node = state()
    wanted = spec_from_params(
        bootstrap=None, exclusive=False, peers=[addr(A)], peers_exclusive=False, connect_required="any"
    )
    with pytest.raises(KuboError) as caught:
        apply(Recorder(node, refuse=frozenset({A})), plan(node, wanted))  # type: ignore[arg-type]
    assert caught.value.msg.startswith(f"Failed to connect to {addr(A)}: ")


def test_a_failure_before_any_write_reports_unchanged() -> None:
    node = state()
    client = Recorder(node, refuse=frozenset({"Bootstrap"}))
    with pytest.raises(KuboError) as caught:
        apply(client, plan(node, spec(bootstrap=[addr(A)], exclusive=True, peers=[addr(A)])))  # type: ignore[arg-type]
    assert caught.value.msg == "Failed to update the bootstrap list: refused"
    assert caught.value.fields["changed"] is False
    assert [name for name, _ in client.calls] == ["config_set"]


def test_ensure_in_check_mode_writes_nothing_and_returns_the_prediction() -> None:
    node = state(bootstrap=[addr(B)], connected=[B])
    client = Recorder(node)
    the_plan, result = ensure(client, spec(bootstrap=[addr(A)], peers=[addr(A)]), check_mode=True)  # type: ignore[arg-type]
    assert the_plan.changed
    assert client.calls == []
    assert result["bootstrap"] == [addr(B), addr(A)]
    assert result["peering"] == [{"peer_id": A, "addresses": ["/ip4/10.0.0.1/tcp/4001"]}]
    assert sorted(peer["peer_id"] for peer in result["connected_peers"]) == sorted([A, B])
    assert result["peer_id"] == SELF


def test_a_plan_without_writes_reports_unchanged() -> None:
    assert not SwarmPlan(bootstrap_before=[], bootstrap_after=[]).changed


def test_without_connect_a_new_peer_is_protected_but_not_dialled() -> None:
    wanted = spec_from_params(bootstrap=None, exclusive=False, peers=[addr(A)], peers_exclusive=False, connect=False)
    result = plan(state(), wanted)
    assert [entry["ID"] for entry in result.live_add] == [A]
    assert result.connect == []


# -- the bootstrap list follows the peering (bootstrap_include_peering) ---------------------


def test_with_include_peering_the_bootstrap_list_is_the_given_addresses_plus_the_protected_peers() -> None:
    node = state(
        bootstrap=[addr(A)],
        config=[{"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001", "/ip4/10.0.0.3/tcp/4001"]}],
    )
    result = plan(node, spec(bootstrap=[addr(A)], exclusive=True, include_peering=True))
    assert result.bootstrap_replace
    assert result.bootstrap_after == [addr(A), addr(B, "10.0.0.2"), addr(B, "10.0.0.3")]


def test_a_peer_protected_by_the_same_run_joins_the_bootstrap_list_in_the_same_run() -> None:
    """The identity role's run: the spec's bootstrap node stays, a live member joins peering and bootstrap at once."""
    member = addr(B, "10.0.0.2")
    result = plan(
        state(bootstrap=[addr(A)]),
        spec(
            bootstrap=[addr(A)],
            exclusive=True,
            include_peering=True,
            peers=[addr(A), member],
            peers_exclusive=True,
            connect=False,
        ),
    )
    assert [entry["ID"] for entry in result.peering_after] == [A, B]
    assert result.bootstrap_after == [addr(A), member]
    assert diff(result)["after"]["bootstrap"] == [addr(A), member]


def test_a_member_dropped_from_the_peering_leaves_the_bootstrap_list_and_the_given_addresses_stay() -> None:
    """A member that left: the identity role's exclusive peering drops it, and with it its bootstrap entry."""
    gone: AddrInfo = {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}
    bootstrap_node: AddrInfo = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    node = state(
        bootstrap=[addr(A), addr(B, "10.0.0.2")],
        config=[bootstrap_node, gone],
        live=[bootstrap_node, gone],
        connected=[A, B],
    )
    result = plan(
        node,
        spec(bootstrap=[addr(A)], exclusive=True, include_peering=True, peers=[addr(A)], peers_exclusive=True),
    )
    assert result.live_remove == [B]
    assert result.bootstrap_replace
    assert result.bootstrap_after == [addr(A)]


def test_the_swarmpool_roles_run_keeps_the_members_the_identity_role_protects() -> None:
    """The swarmpool role's run (spec bootstrap, non-exclusive peers) after the identity role's: nothing to undo."""
    member: AddrInfo = {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}
    bootstrap_node: AddrInfo = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    node = state(
        bootstrap=[addr(A), addr(B, "10.0.0.2")],
        config=[bootstrap_node, member],
        live=[bootstrap_node, member],
        connected=[A, B],
    )
    result = plan(node, spec(bootstrap=[addr(A)], exclusive=True, include_peering=True, peers=[addr(A)]))
    assert not result.changed
    assert result.bootstrap_after == [addr(A), addr(B, "10.0.0.2")]


def test_without_include_peering_an_exclusive_bootstrap_list_drops_the_protected_peers() -> None:
    """What the swarmpool role did before: a reconcile removed the members from the bootstrap list."""
    node = state(bootstrap=[addr(A), addr(B)], config=[{"ID": B, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}])
    result = plan(node, spec(bootstrap=[addr(A)], exclusive=True))
    assert result.bootstrap_after == [addr(A)]


def test_include_peering_adds_no_address_twice_whatever_its_spelling() -> None:
    node = state(bootstrap=[addr(A, spelling="ipfs")], config=[{"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}])
    result = plan(node, spec(bootstrap=[addr(A)], exclusive=True, include_peering=True))
    assert not result.changed
    assert result.bootstrap_after == [addr(A, spelling="ipfs")]


def test_include_peering_without_exclusive_only_adds_the_missing_peers() -> None:
    node = state(bootstrap=[addr(C, "10.0.0.3")], config=[{"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}])
    result = plan(node, spec(bootstrap=[addr(A)], include_peering=True))
    assert result.bootstrap_add == [addr(A), addr(B, "10.0.0.2")]
    assert result.bootstrap_after == [addr(C, "10.0.0.3"), addr(A), addr(B, "10.0.0.2")]


def test_include_peering_leaves_out_the_nodes_own_id_and_warns_about_an_address_that_does_not_parse() -> None:
    node = state(
        config=[
            {"ID": SELF, "Addrs": ["/ip4/127.0.0.1/tcp/4001"]},
            {"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001", "/garbage/1"]},
        ]
    )
    result = plan(node, spec(bootstrap=[], exclusive=True, include_peering=True))
    assert result.bootstrap_after == [addr(B, "10.0.0.2")]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"Left /garbage/1/p2p/{B} of Peering.Peers out of the bootstrap list: ")


def test_include_peering_is_ignored_without_bootstrap() -> None:
    node = state(bootstrap=[], config=[{"ID": B, "Addrs": ["/ip4/10.0.0.2/tcp/4001"]}])
    assert not plan(node, spec(include_peering=True)).changed


def test_ensure_in_check_mode_predicts_the_bootstrap_list_that_follows_the_peering() -> None:
    node = state(bootstrap=[addr(A)])
    client = Recorder(node)
    wanted = spec(bootstrap=[addr(A)], exclusive=True, include_peering=True, peers=[addr(B, "10.0.0.2")])
    the_plan, result = ensure(client, wanted, check_mode=True)  # type: ignore[arg-type]
    assert the_plan.changed
    assert client.calls == []
    assert result["bootstrap"] == [addr(A), addr(B, "10.0.0.2")]
    assert result["counters"] == {"Number of bootstraps": 2, "Number of connected peers": 1}


# -- counters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bootstrap", "connected", "expected"),
    [
        pytest.param([], [], (0, 0), id="alone"),
        pytest.param([addr(A)], [(A, "/ip4/10.0.0.1/tcp/4001")], (1, 1), id="one-each"),
        pytest.param(
            [addr(A), addr(A, "10.0.0.7"), addr(A, spelling="ipfs")],
            [(A, "/ip4/10.0.0.1/tcp/4001"), (A, "/ip4/10.0.0.1/tcp/50312")],
            (1, 1),
            id="one-peer-two-addresses-and-two-connections",
        ),
        pytest.param(
            [addr(A), addr(B, "10.0.0.2")],
            [(A, "/ip4/10.0.0.1/tcp/4001"), (B, "/ip4/10.0.0.2/tcp/4001"), (C, "/ip4/10.0.0.3/tcp/4001")],
            (2, 3),
            id="distinct-peers",
        ),
        pytest.param(["auto", addr(B)], [("", "/ip4/10.0.0.9/tcp/4001")], (1, 0), id="entries-naming-no-peer"),
    ],
)
def test_counters_count_distinct_peers_not_entries(
    bootstrap: list[str], connected: list[tuple[str, str]], expected: tuple[int, int]
) -> None:
    connections = [ConnInfo(Peer=peer, Addr=address) for peer, address in connected]
    assert counters(bootstrap, connections) == {
        "Number of bootstraps": expected[0],
        "Number of connected peers": expected[1],
    }


def test_ensure_returns_the_counters_of_the_node_after_the_run() -> None:
    node = state(bootstrap=[addr(A), addr(A, "10.0.0.7")], connected=[A, A, B])
    _, result = ensure(Recorder(node), SwarmSpec(), check_mode=False)  # type: ignore[arg-type]
    assert result["counters"] == {"Number of bootstraps": 1, "Number of connected peers": 2}
    assert len(result["connected_peers"]) == 3  # still one entry per connection


# -- protect_members: what the discovery agent adds between rounds ---------------------------------


def test_protect_members_adds_the_member_to_peering_and_bootstrap_and_removes_or_dials_nothing() -> None:
    kept = {"ID": C, "Addrs": ["/ip4/10.0.0.3/tcp/4001"]}
    node = state(bootstrap=[addr(C, "10.0.0.3")], config=[kept], live=[kept], connected=[C])
    client = Recorder(node)
    the_plan = protect_members(client, [addr(A)])  # type: ignore[arg-type]
    assert the_plan.changed
    assert client.calls == [
        ("bootstrap_add", (addr(A),)),
        ("config_set", ("Peering.Peers", [kept, {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}])),
        ("peering_add", (addr(A),)),
    ]


def test_protect_members_already_protected_and_listed_writes_nothing() -> None:
    entry = {"ID": A, "Addrs": ["/ip4/10.0.0.1/tcp/4001"]}
    client = Recorder(state(bootstrap=[addr(A)], config=[entry], live=[entry]))
    assert not protect_members(client, [addr(A)]).changed  # type: ignore[arg-type]
    assert client.calls == []


def test_protect_members_refuses_a_malformed_address_before_writing() -> None:
    client = Recorder(state())
    with pytest.raises(MultiaddrError):
        protect_members(client, ["/x"])  # type: ignore[arg-type]
    assert client.calls == []
