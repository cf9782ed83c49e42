"""The agent's SwarmPool counters: which nodes it reads, when it writes, and what.

Covers agent/src/cluster_discovery_agent/nodestatus.py without a node or a
cluster: ``nodes_of`` (only swarms the role reported serving), ``status_patch``
(a status entry plus a node's reading -> a merge patch of the changed counters,
lastUpdate and the resourceVersion, or None), ``Reachability`` (a silent node
is logged once per change), and ``NodeStatus.tick`` with a stand-in cache and
reader. Against the real test bed (kubo, API server, the agent process):
tests/integration/roles/test_swarm_members.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from cluster_discovery_agent.kube import ObjectRef
from cluster_discovery_agent.nodestatus import (
    NodeRef,
    NodeStatus,
    Reachability,
    nodes_of,
    status_patch,
    worth_telling,
)

NOW = "2026-11-29T12:00:00Z"
API = "http://127.0.0.5:5001"
BOOTSTRAPS, CONNECTED = "Number of bootstraps", "Number of connected peers"


def entry(
    *, bootstraps: int = 0, connected: int = 0, api: str | None = API, error: str | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "Name": "main",
        "Peer Id": "12D3KooWMtK5wfiGV8CXA3sVXeEUXUknHPuxB8gAAPCprvhHTMhq",
        "Addresses": [],
        BOOTSTRAPS: bootstraps,
        CONNECTED: connected,
    }
    if api is not None:
        value["API"] = api
    if error is not None:
        value["Error"] = error
    return value


def pool(
    *entries: tuple[str, dict[str, Any]], version: str = "41", deleting: bool = False, name: str = "pool"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": version}
    if deleting:
        metadata["deletionTimestamp"] = NOW
    return {
        "metadata": metadata,
        "status": {"hash": "h", "lastUpdate": "2026-11-29T11:00:00Z", "status": dict(entries)},
    }


def node(swarm: str = "main", api: str = API, name: str = "pool") -> NodeRef:
    return NodeRef(namespace="ns", pool=name, swarm=swarm, api_url=api)


def reading(bootstraps: int = 0, connected: int = 0) -> dict[str, int]:
    return {BOOTSTRAPS: bootstraps, CONNECTED: connected}


# -- which nodes are read ---------------------------------------------------------------


def test_only_swarms_the_role_reported_serving_are_read() -> None:
    obj = pool(
        ("main", entry()),
        ("broken", entry(error="swarm broken: node pool-broken-0 is not ready after 180 s")),
        ("starting", entry(api=None)),
        ("other", entry(api="http://127.0.0.6:5001")),
    )
    assert nodes_of(obj) == [node("main"), node("other", "http://127.0.0.6:5001")]


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(pool(("main", entry()), deleting=True), id="being-deleted"),
        pytest.param({"metadata": {"name": "pool", "namespace": "ns"}}, id="no-status-yet"),
        pytest.param({"metadata": {"name": "pool", "namespace": "ns"}, "status": {"status": "junk"}}, id="junk"),
    ],
)
def test_no_node_is_read_for_a_swarmpool_being_deleted_or_without_a_report(obj: dict[str, Any]) -> None:
    assert nodes_of(obj) == []


# -- status entry + reading -> patch or None ----------------------------------------------


def test_counters_equal_to_the_status_write_nothing() -> None:
    obj = pool(("main", entry(bootstraps=1, connected=2)))
    assert status_patch(obj, {node(): reading(1, 2)}, now=NOW) is None


def test_a_new_connected_peer_patches_the_counters_and_last_update_at_the_version_read() -> None:
    obj = pool(("main", entry(bootstraps=1, connected=0)), version="41")
    assert status_patch(obj, {node(): reading(1, 1)}, now=NOW) == {
        "metadata": {"resourceVersion": "41"},
        "status": {"lastUpdate": NOW, "status": {"main": {BOOTSTRAPS: 1, CONNECTED: 1}}, "connectedPeers": "main=1"},
    }


def test_only_the_swarms_that_changed_are_in_the_patch() -> None:
    obj = pool(("main", entry(connected=1)), ("other", entry(api="http://127.0.0.6:5001", connected=3)))
    patch = status_patch(obj, {node(): reading(0, 1), node("other", "http://127.0.0.6:5001"): reading(2, 3)}, now=NOW)
    assert patch is not None
    assert patch["status"]["status"] == {"other": {BOOTSTRAPS: 2, CONNECTED: 3}}


def test_the_printed_connected_peers_name_every_swarm_with_the_counters_after_the_patch() -> None:
    obj = pool(
        ("main", entry(connected=1)),
        ("other", entry(api="http://127.0.0.6:5001", connected=3)),
        ("broken", entry(error="not ready", connected=0)),
    )
    patch = status_patch(obj, {node("other", "http://127.0.0.6:5001"): reading(2, 4)}, now=NOW)
    assert patch is not None
    assert patch["status"]["connectedPeers"] == "broken=0,main=1,other=4"


@pytest.mark.parametrize(
    ("obj", "reading_of"),
    [
        pytest.param(pool(("main", entry(error="not ready"))), node(), id="the-role-reported-an-error-since"),
        pytest.param(pool(("main", entry(api="http://127.0.0.9:5001"))), node(), id="the-node-moved-since"),
        pytest.param(pool(("other", entry())), node(), id="the-swarm-left-the-status"),
        pytest.param(pool(("main", entry()), deleting=True), node(), id="being-deleted"),
        pytest.param(pool(("main", entry()), version=""), node(), id="no-resource-version"),
        pytest.param(pool(("main", entry())), node(name="another-pool"), id="another-pools-node"),
    ],
)
def test_a_reading_the_status_no_longer_vouches_for_writes_nothing(obj: dict[str, Any], reading_of: NodeRef) -> None:
    assert status_patch(obj, {reading_of: reading(1, 1)}, now=NOW) is None


def test_a_counter_of_another_type_than_int_is_rewritten() -> None:
    obj = pool(("main", {**entry(), CONNECTED: "1"}))
    patch = status_patch(obj, {node(): reading(0, 1)}, now=NOW)
    assert patch is not None and patch["status"]["status"]["main"][CONNECTED] == 1


# -- a silent node is logged once per change ------------------------------------------------


def test_a_node_that_stops_answering_is_reported_once_and_once_when_it_answers_again() -> None:
    seen = Reachability()
    assert [seen.answered(node()), seen.failed(node()), seen.failed(node()), seen.failed(node())] == [
        False,
        True,
        False,
        False,
    ]
    assert [seen.answered(node()), seen.answered(node())] == [True, False]


def test_a_node_no_swarmpool_names_any_more_is_forgotten() -> None:
    seen = Reachability()
    seen.failed(node())
    seen.keep_only(set())
    assert seen.failed(node()) is True


# -- which changes are told at info -------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "told"),
    [
        pytest.param(entry(bootstraps=2, connected=2), reading(2, 1), False, id="fewer-peers-still-connected"),
        pytest.param(entry(bootstraps=2, connected=1), reading(2, 3), False, id="more-peers-already-connected"),
        pytest.param(entry(bootstraps=2, connected=1), reading(2, 0), True, id="last-peer-lost"),
        pytest.param(entry(bootstraps=2, connected=0), reading(2, 1), True, id="first-peer"),
        pytest.param(entry(bootstraps=2, connected=1), reading(3, 1), True, id="bootstrap-list-changed"),
        pytest.param(None, reading(0, 0), True, id="no-entry-before"),
        pytest.param("not a mapping", reading(1, 1), True, id="entry-of-another-shape"),
    ],
)
def test_the_counters_are_news_when_a_swarm_connects_disconnects_or_its_bootstraps_change(
    before: Any, after: dict[str, int], told: bool
) -> None:
    assert worth_telling(before, after) is told


def test_connected_peers_coming_and_going_are_logged_at_debug_and_isolation_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CI run of stop 29: a walkthrough cluster's agent logged "connected peers 1" four times at info while a
    member's connection came and went."""
    pools = Pools(pool(("main", entry(bootstraps=2, connected=2))))
    reader = Reader({API: reading(2, 1)})
    status = NodeStatus(pools, read=reader, now=lambda: NOW)
    with caplog.at_level(logging.DEBUG, logger="cluster_discovery_agent.nodestatus"):
        for connected in (1, 2, 1, 2, 1, 0, 1):
            reader.answers = {API: reading(2, connected)}
            assert status.tick() == [ObjectRef("ns", "pool")]
    told = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert len(told) == 7
    assert [message for level, message in told if level == logging.INFO] == [
        "SwarmPool ns/pool swarm main: Number of bootstraps 2, Number of connected peers 0",
        "SwarmPool ns/pool swarm main: Number of bootstraps 2, Number of connected peers 1",
    ]


# -- one tick, with a stand-in cache and reader ------------------------------------------------


class Pools:
    """The watched SwarmPools: answers from a dict, records patches, bumps the version as the API server does."""

    def __init__(self, *objects: dict[str, Any], conflict: bool = False) -> None:
        self.objects = {ObjectRef("ns", obj["metadata"]["name"]): obj for obj in objects}
        self.conflict = conflict
        self.patches: list[tuple[ObjectRef, dict[str, Any]]] = []

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.objects.get(ref)

    def patch_status(self, ref: ObjectRef, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.patches.append((ref, patch))
        if self.conflict:
            return None
        obj = self.objects[ref]
        obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
        obj["status"]["lastUpdate"] = patch["status"]["lastUpdate"]
        obj["status"]["connectedPeers"] = patch["status"]["connectedPeers"]
        for swarm, counted in patch["status"]["status"].items():
            obj["status"]["status"][swarm].update(counted)
        return obj


class Reader:
    def __init__(self, answers: Mapping[str, dict[str, int] | Exception]) -> None:
        self.answers = answers
        self.calls: list[NodeRef] = []

    def __call__(self, target: NodeRef) -> dict[str, int]:
        self.calls.append(target)
        answer = self.answers[target.api_url]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_a_tick_writes_a_change_once_and_then_nothing_while_the_node_stays_the_same() -> None:
    pools = Pools(pool(("main", entry(connected=0))))
    status = NodeStatus(pools, read=Reader({API: reading(0, 1)}), now=lambda: NOW)
    assert status.tick() == [ObjectRef("ns", "pool")]
    assert [patch["metadata"]["resourceVersion"] for _, patch in pools.patches] == ["41"]
    assert status.tick() == []
    assert status.tick() == []
    assert len(pools.patches) == 1


def test_a_node_that_does_not_answer_is_skipped_logged_once_and_the_others_are_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    silent = "http://127.0.0.6:5001"
    pools = Pools(pool(("main", entry())), pool(("main", entry(api=silent)), name="quiet"))
    reader = Reader({API: reading(1, 1), silent: ConnectionError("connection refused")})
    status = NodeStatus(pools, read=reader, now=lambda: NOW)
    with caplog.at_level(logging.INFO, logger="cluster_discovery_agent.nodestatus"):
        for _ in range(3):
            status.tick()
    assert [ref for ref, _ in pools.patches] == [ObjectRef("ns", "pool")]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ns/quiet/main" in warnings[0] and "connection refused" in warnings[0]
    assert len(reader.calls) == 6  # still read every period, to notice when it answers again

    reader.answers = {API: reading(1, 1), silent: reading(0, 0)}
    with caplog.at_level(logging.INFO, logger="cluster_discovery_agent.nodestatus"):
        status.tick()
    assert any(
        "ns/quiet/main" in record.getMessage() and "answers again" in record.getMessage() for record in caplog.records
    )


def test_a_conflict_writes_nothing_more_and_the_next_tick_compares_again() -> None:
    pools = Pools(pool(("main", entry(connected=0))), conflict=True)
    status = NodeStatus(pools, read=Reader({API: reading(0, 1)}), now=lambda: NOW)
    assert status.tick() == []
    pools.conflict = False
    assert status.tick() == [ObjectRef("ns", "pool")]
    assert len(pools.patches) == 2
