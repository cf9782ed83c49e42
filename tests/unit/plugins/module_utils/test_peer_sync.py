"""Peer synchronization rules: one discovery round in, Peer actions out.

Covers the pure planning of plugins/module_utils/peer_sync.py; the writes
themselves run against a real API server in the identity role's tests.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    DEFAULT_FORGET_AFTER,
    DEFAULT_OFFLINE_AFTER,
    KUBECONFIG_ANNOTATION,
    KUBECONFIG_DIGEST_ANNOTATION,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import KubernetesError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    MAX_PEERS_PER_SWARM,
    OFFLINE,
    ONLINE,
    SYNC_PEERS_GAUGE,
    Scope,
    SyncPlan,
    apply,
    category_label,
    gauges,
    label_value,
    plan,
    selector,
    tombstones,
)

from tests.kubeconfigs import kubeconfig_text

KUBECONFIG = kubeconfig_text("cluster2", token="token-of-cluster2")
B = "QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"
C = "QmZ9JTRZdiARHzW1x28M51rareFNHtJ8xNohyT8Ewr7sQx"
NOW = "2026-11-29T12:00:00Z"
SCOPE = Scope(
    identity_name="cluster1-identity",
    identity_namespace="private-network-peer-configuration",
    identity_uid="uid-1",
    namespace="private-network-peer-configuration",
    swarm_pool="cluster1-private",
    swarm="cluster1-private",
)


def identity(peer_id: str = B, **fields: Any) -> dict[str, Any]:
    return {
        "peer_id": peer_id,
        "sequence": 10,
        "name": "Cluster 2",
        "description": "I'm cluster 2",
        "url": "https://35.187.98.45",
        "categories": ["computing", "sentinel S3A"],
        "kubernetes_version": "v1.37.2",
        "kubeconfig": KUBECONFIG,
        **fields,
    }


def existing(peer_id: str, *, scope: Scope = SCOPE, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": peer_id.lower(), "labels": scope.labels}, "status": {"status": ONLINE, **status}}


def round_(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "existing": [],
        "discovered": [],
        "removed": {},
        "refused": [],
        "now": NOW,
        "offline_after": 3,
        "forget_after": 10,
    }
    args.update(kwargs)
    return plan(SCOPE, **args)


def test_a_discovered_identity_becomes_an_online_peer_named_after_its_lowercased_peer_id() -> None:
    result = round_(discovered=[identity()])
    [action] = result.actions
    assert action.verb == "apply" and action.name == B.lower()
    peer = action.peer
    assert peer["spec"] == {
        "name": "Cluster 2",
        "description": "I'm cluster 2",
        "URL": "https://35.187.98.45",
        "categories": [{"name": "computing"}, {"name": "sentinel S3A"}],
    }
    assert peer["metadata"]["annotations"] == {
        KUBECONFIG_ANNOTATION: B.lower() + "-kubeconfig",
        KUBECONFIG_DIGEST_ANNOTATION: hashlib.sha256(KUBECONFIG.encode()).hexdigest(),
    }
    assert peer["metadata"]["labels"][category_label("sentinel S3A")] == "true"
    assert peer["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert action.status["status"] == ONLINE and action.status["missingCounter"] == 0
    assert action.status["lastSeen"] == NOW and action.status["kubernetesVersion"] == "v1.37.2"
    assert action.kubeconfig == KUBECONFIG
    assert (result.online, result.offline, result.synchronized) == (1, 0, 1)


def test_the_kubeconfigs_digest_changes_the_peer_when_the_kubeconfig_changes_and_is_absent_without_one() -> None:
    """The peer role checks a Peer's kubeconfig when the Peer changes; the digest makes a new kubeconfig a change."""
    [first] = round_(discovered=[identity()]).actions
    [renewed] = round_(discovered=[identity(kubeconfig=kubeconfig_text("cluster2", token="renewed-token"))]).actions
    [without] = round_(discovered=[identity(kubeconfig=None)]).actions
    digest = first.peer["metadata"]["annotations"][KUBECONFIG_DIGEST_ANNOTATION]
    assert renewed.peer["metadata"]["annotations"][KUBECONFIG_DIGEST_ANNOTATION] != digest
    assert KUBECONFIG_DIGEST_ANNOTATION not in without.peer["metadata"]["annotations"]
    assert "token" not in digest


def test_categories_become_label_keys_kubectl_can_select() -> None:
    assert category_label("EO data") == "category.peerdiscovery.irt-saintexupery.com/eo-data"
    assert category_label("weather forecast") == "category.peerdiscovery.irt-saintexupery.com/weather-forecast"
    assert category_label("!!!") == "category.peerdiscovery.irt-saintexupery.com/unnamed"
    assert len(category_label("x" * 300).split("/")[1]) == 63
    assert label_value("a" * 100 + "-") == "a" * 63


def test_a_peer_in_another_namespace_than_its_identity_is_not_owned_by_it() -> None:
    scope = Scope("id", "ns-a", "uid-1", "ns-b", "pool", "swarm")
    [action] = plan(
        scope, existing=[], discovered=[identity()], removed={}, refused=[], now=NOW, offline_after=3, forget_after=9
    ).actions
    assert "ownerReferences" not in action.peer["metadata"]


def test_a_tombstone_deletes_the_peer() -> None:
    result = round_(existing=[existing(B)], removed={B: 11})
    assert [(a.verb, a.name) for a in result.actions] == [("delete", B.lower())]


@pytest.mark.parametrize(
    ("missing_before", "verb", "state"),
    [
        pytest.param(0, "status", ONLINE, id="first-miss-stays-online"),
        pytest.param(2, "status", OFFLINE, id="third-miss-goes-offline"),
        pytest.param(9, "delete", None, id="tenth-miss-forgets"),
    ],
)
def test_a_peer_not_heard_counts_misses_then_goes_offline_then_is_forgotten(
    missing_before: int, verb: str, state: str | None
) -> None:
    result = round_(existing=[existing(B, missingCounter=missing_before)])
    [action] = result.actions
    assert action.verb == verb
    if state is not None:
        assert action.status["status"] == state
        assert action.status["missingCounter"] == missing_before + 1


def test_a_peer_heard_again_is_online_with_no_misses() -> None:
    result = round_(existing=[existing(B, status=OFFLINE, missingCounter=5)], discovered=[identity()])
    [action] = result.actions
    assert action.status["status"] == ONLINE and action.status["missingCounter"] == 0


def test_an_offline_peer_is_online_again_only_on_a_member_heard_after_its_last_seen() -> None:
    """Issue 19: a round that learned the members before the agent turned a silent one Offline leaves it Offline."""
    offline = existing(B, status=OFFLINE, lastSeen="2026-11-29T11:58:30Z", missingCounter=1)
    for heard_at in ("2026-11-29T11:58:30Z", "2026-11-29T11:58:00Z"):
        result = round_(existing=[offline], discovered=[identity(heard_at=heard_at)])
        assert (result.actions, result.online, result.offline) == ([], 0, 1), heard_at
    for heard_at in ("2026-11-29T11:58:31Z", None):
        [action] = round_(existing=[offline], discovered=[identity(heard_at=heard_at)]).actions
        assert (action.status["status"], action.status["missingCounter"]) == (ONLINE, 0), heard_at


def test_a_member_whose_documents_were_refused_keeps_its_peer_as_it_is() -> None:
    result = round_(existing=[existing(B, missingCounter=1)], refused=[B])
    assert result.actions == []
    assert result.online == 1


def test_a_peer_of_another_identity_is_never_touched() -> None:
    other = Scope("other-identity", "elsewhere", None, SCOPE.namespace, "pool", "swarm")
    theirs = existing(B, scope=other)
    result = round_(existing=[theirs], discovered=[identity()], removed={B: 11})
    assert result.actions == []
    assert result.warnings and "another Identity" in result.warnings[0]


def test_last_seen_stays_while_the_member_stays_online_with_the_same_document() -> None:
    """Issue 20: a steady swarm's rounds write no timestamp; liveness is what was heard, not lastSeen."""
    day_old = existing(B, lastSeen="2026-11-28T12:00:00Z", missingCounter=0, sequence=10)
    [action] = round_(existing=[day_old], discovered=[identity(heard_at="2026-11-29T11:59:58Z")]).actions
    assert action.status["lastSeen"] == "2026-11-28T12:00:00Z"


def test_last_seen_is_when_the_member_was_heard_on_news_and_on_its_return() -> None:
    heard = "2026-11-29T11:59:58Z"
    news = existing(B, lastSeen="2026-11-28T12:00:00Z", missingCounter=0, sequence=9)
    [action] = round_(existing=[news], discovered=[identity(heard_at=heard)]).actions
    assert action.status["lastSeen"] == heard, "a new document"
    back = existing(B, status=OFFLINE, lastSeen="2026-11-28T12:00:00Z", missingCounter=2, sequence=10)
    [action] = round_(existing=[back], discovered=[identity(heard_at=heard)]).actions
    assert action.status["lastSeen"] == heard, "Online again"
    [action] = round_(discovered=[identity()]).actions
    assert action.status["lastSeen"] == NOW, "created, heard now"
    [action] = round_(discovered=[identity(heard_at="yesterday")]).actions
    assert action.status["lastSeen"] == NOW, "a heard_at of another form is ignored"


def test_a_peer_turning_offline_shows_when_its_member_was_last_heard_then_keeps_it() -> None:
    last = "2026-11-29T11:58:00Z"
    online = existing(B, lastSeen="2026-11-28T12:00:00Z", missingCounter=0)
    [action] = round_(existing=[online], offline_after=1, last_heard={B: last}).actions
    assert action.status["status"] == OFFLINE and action.status["lastSeen"] == last
    offline = existing(B, status=OFFLINE, lastSeen=last, missingCounter=1)
    [action] = round_(existing=[offline], offline_after=1, last_heard={B: "2026-11-29T11:59:00Z"}).actions
    assert action.status["missingCounter"] == 2 and "lastSeen" not in action.status, "kept as it is"
    [action] = round_(existing=[online], offline_after=1).actions
    assert "lastSeen" not in action.status, "never heard by this node: the Peer's own is kept"
    silent = round_(existing=[online], count_misses=False, silent=[B], last_heard={B: last})
    assert [a.status["lastSeen"] for a in silent.actions] == [last], "the fast path's silent member too"


def test_the_selector_finds_exactly_the_scopes_peers() -> None:
    assert selector(SCOPE) == (
        "peerdiscovery.irt-saintexupery.com/identity=cluster1-identity,"
        "peerdiscovery.irt-saintexupery.com/identity-namespace=private-network-peer-configuration,"
        "peerdiscovery.irt-saintexupery.com/swarm=cluster1-private"
    )


def test_applying_news_alone_counts_no_misses_for_members_not_in_the_news() -> None:
    result = round_(existing=[existing(B, missingCounter=1), existing(C)], discovered=[identity(C)], count_misses=False)
    assert [(a.verb, a.name) for a in result.actions] == [("apply", C.lower())]


def test_the_fast_path_turns_a_silent_member_offline_at_once_and_leaves_the_others() -> None:
    """Issue 19: the agent knows a member fell silent before the role's next round does."""
    peers = [existing(B, missingCounter=0), existing(C), existing(C.lower() + "x", status=OFFLINE, missingCounter=4)]
    result = round_(existing=peers, discovered=[], count_misses=False, silent=[B, C.lower() + "x"])
    assert [(a.verb, a.name, a.status["status"], a.status["missingCounter"]) for a in result.actions] == [
        ("status", B.lower(), OFFLINE, 1)
    ], "only the member that fell silent changes; one already Offline is not written again"
    assert (result.online, result.offline) == (1, 2)


def test_a_silent_member_whose_documents_were_refused_is_left_alone() -> None:
    result = round_(existing=[existing(B)], discovered=[], refused=[B], count_misses=False, silent=[B])
    assert result.actions == []


def test_by_default_a_round_in_which_a_member_was_not_live_makes_it_offline() -> None:
    """The Offline time is discovery's fresh_within; no extra rounds are waited on top of it."""
    result = plan(
        SCOPE, existing=[existing(B)], discovered=[], removed={}, refused=[], now=NOW,
        offline_after=DEFAULT_OFFLINE_AFTER, forget_after=DEFAULT_FORGET_AFTER,
    )  # fmt: skip
    [action] = result.actions
    assert (action.status["status"], action.status["missingCounter"]) == (OFFLINE, 1)


class MemoryPeers:
    """Just enough of ResourceService for apply(): objects by name in one namespace."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {o["metadata"]["name"]: copy.deepcopy(o) for o in objects}
        self.calls: list[tuple[str, str]] = []

    def get(self, name: str, namespace: str) -> dict[str, Any] | None:
        self.calls.append(("get", name))
        return copy.deepcopy(self.objects.get(name))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body["metadata"]["name"]))
        self.objects[body["metadata"]["name"]] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def patch(self, name: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch", name))
        self.objects[name].setdefault("spec", {}).update(body.get("spec") or {})
        return copy.deepcopy(self.objects[name])

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("patch_status", name))
        self.objects[name].setdefault("status", {}).update(status)
        return copy.deepcopy(self.objects[name])

    def delete(self, name: str, namespace: str) -> None:
        self.calls.append(("delete", name))
        self.objects.pop(name, None)


def test_a_round_older_than_what_a_peer_shows_changes_nothing() -> None:
    """The role's round started before the agent applied C's new document: its tombstone and data are stale."""
    shown = existing(B, sequence=12)
    stale_tombstone = round_(existing=[shown], removed={B: 11})
    stale_update = round_(existing=[shown], discovered=[identity(sequence=10, description="old")])
    # A deletion reads the Peer first, and so does news with a kubeconfig (its Secret is checked too).
    stale_without_kubeconfig = round_(existing=[shown], discovered=[identity(sequence=10, kubeconfig=None)])
    for stale, reads in (
        (stale_tombstone, [("get", B.lower())]),
        (stale_update, [("get", B.lower())]),
        (stale_without_kubeconfig, []),
    ):
        peers, secrets = MemoryPeers(shown), MemoryPeers()
        done = apply(stale, SCOPE, peers=peers, secrets=secrets, check_mode=False)  # type: ignore[arg-type]
        assert not done.changed and peers.calls == reads and secrets.calls == []
    fresh_tombstone = round_(existing=[shown], removed={B: 13})
    peers = MemoryPeers(shown)
    done = apply(fresh_tombstone, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    assert done.deleted == [B.lower()] and peers.objects == {}


def test_peers_that_a_round_would_not_change_are_not_even_read_again() -> None:
    """Issue 20: the agent's every pass read each Peer back, to write nothing, at 50 members 50 reads a pass."""
    first = round_(discovered=[identity(C, kubeconfig=None)])
    peers = MemoryPeers()
    apply(first, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    listed = list(peers.objects.values())
    peers.calls.clear()
    again = round_(existing=listed, discovered=[identity(C, kubeconfig=None)])
    done = apply(again, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    assert not done.changed and peers.calls == []
    changed = round_(existing=listed, discovered=[identity(C, kubeconfig=None, description="new")])
    done = apply(changed, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    assert done.updated == [C.lower()] and peers.calls == [("get", C.lower()), ("patch", C.lower())]


def test_a_member_with_a_kubeconfig_has_its_secret_checked_every_round() -> None:
    """A Peer's Secret is not listed with it: whether it still holds the kubeconfig is read, not assumed."""
    peers, secrets = MemoryPeers(), MemoryPeers()
    apply(round_(discovered=[identity()]), SCOPE, peers=peers, secrets=secrets, check_mode=False)  # type: ignore[arg-type]
    secrets.objects.clear()  # somebody deleted it
    again = round_(existing=list(peers.objects.values()), discovered=[identity()])
    done = apply(again, SCOPE, peers=peers, secrets=secrets, check_mode=False)  # type: ignore[arg-type]
    assert done.updated == [B.lower()] and set(secrets.objects) == {B.lower() + "-kubeconfig"}


def test_a_tombstone_without_a_sequence_deletes_whatever_the_peer_shows() -> None:
    shown = existing(B, sequence=12)
    peers = MemoryPeers(shown)
    done = apply(
        round_(existing=[shown], removed={B: None}), SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False
    )  # type: ignore[arg-type]
    assert done.deleted == [B.lower()]


def test_removed_is_read_from_discovery_results_or_bare_peer_ids() -> None:
    assert tombstones([{"peer_id": B, "sequence": 11}, C]) == {B: 11, C: None}
    for bad in ([{"sequence": 3}], [""], [{"peer_id": B, "sequence": "11"}], [{"peer_id": B, "sequence": True}], [7]):
        with pytest.raises(ValueError, match=r"removed\[0\]"):
            tombstones(bad)


def test_a_kubeconfig_of_another_shape_refuses_the_members_news_and_writes_nothing() -> None:
    existing = [
        {
            "metadata": {"name": B.lower(), "namespace": SCOPE.namespace, "labels": SCOPE.labels},
            "status": {"status": ONLINE, "missingCounter": 0},
        }
    ]
    hostile = KUBECONFIG.replace("    token: token-of-cluster2", "    tokenFile: /var/run/secrets/token")
    result = plan(
        SCOPE,
        existing=existing,
        discovered=[identity(kubeconfig=hostile), identity(C, kubeconfig="users: [{user: {exec: {command: touch}}}]")],
        removed={},
        refused=[],
        now=NOW,
        offline_after=3,
        forget_after=10,
    )
    assert result.actions == []
    assert len(result.warnings) == 2 and all("refused" in warning for warning in result.warnings)
    assert result.online == 1  # B's Peer stays exactly as it was, neither renewed nor missed


class RefusingPeers(MemoryPeers):
    """The API server refusing one member's Peer, as the CRD's validation does."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if body["metadata"]["name"] == self.refused:
            raise KubernetesError(f"Failed to create Peer ns/{self.refused}: spec.URL: Invalid value")
        return super().create(body)


def test_a_peer_the_api_server_refuses_costs_that_member_only() -> None:
    peers = RefusingPeers(B.lower())
    decided = round_(existing=[], discovered=[identity(B), identity(C, name="Cluster 3")])
    done = apply(decided, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    assert done.created == [C.lower()]
    assert len(done.failed) == 1 and done.failed[0].startswith(f"{B.lower()}: ")
    assert set(peers.objects) == {C.lower()}


def test_a_member_without_a_url_gets_a_peer_without_one() -> None:
    [action] = round_(existing=[], discovered=[identity(url="")]).actions
    assert action.peer is not None and "URL" not in action.peer["spec"]


def test_a_swarm_flooded_with_members_gets_no_more_than_the_cap_of_peers() -> None:
    already = [existing(f"Qm{n:044d}") for n in range(MAX_PEERS_PER_SWARM - 2)]
    flood = [identity(f"12D3KooW{n:044d}", kubeconfig=None) for n in range(10)]
    decided = round_(existing=already, discovered=flood)
    created = [a for a in decided.actions if a.verb == "apply"]
    assert len(created) == 2
    assert sum("gets no Peer" in warning for warning in decided.warnings) == 8
    # A member that already has its Peer keeps it updated whatever the count.
    full = round_(existing=[*already, existing(B), existing(C)], discovered=[identity(B)])
    assert [a.name for a in full.actions if a.verb == "apply"] == [B.lower()]


class RecordingPeers(MemoryPeers):
    """MemoryPeers that keeps each status patch as sent, and lets another writer change an object between."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        super().__init__(*objects)
        self.status_patches: list[dict[str, Any]] = []

    def patch_status(self, name: str, namespace: str, status: dict[str, Any]) -> dict[str, Any]:
        self.status_patches.append(copy.deepcopy(status))
        return super().patch_status(name, namespace, status)


@pytest.mark.parametrize(
    "round_args",
    [
        pytest.param({"discovered": [identity()]}, id="heard"),
        pytest.param({}, id="missed"),
    ],
)
def test_a_status_write_carries_only_what_peer_sync_owns_so_the_peer_checks_condition_survives(
    round_args: dict[str, Any],
) -> None:
    """Issue 20's lost update: the round read the Peer, the Peer check wrote its Reachable condition, then the
    round's merge patch wrote the whole status it had read, and the condition was gone until the next check."""
    before = [{"type": "Reachable", "status": "False", "reason": "Unreachable", "message": "the check before"}]
    read = existing(B, lastSeen="2026-11-29T11:00:00Z", missingCounter=0, conditions=before)
    decided = round_(existing=[read], **round_args)
    peers = RecordingPeers(read)
    peers.objects[B.lower()]["status"]["conditions"] = [
        {"type": "Reachable", "status": "True", "reason": "Answered", "message": "written after the round read"}
    ]
    apply(decided, SCOPE, peers=peers, secrets=MemoryPeers(), check_mode=False)  # type: ignore[arg-type]
    assert peers.status_patches, "the round wrote no status"
    assert all("conditions" not in patch for patch in peers.status_patches), peers.status_patches
    assert peers.objects[B.lower()]["status"]["conditions"][0]["message"] == "written after the round read"
    owned = {"status", "missingCounter", "swarm", "identity", "lastSeen", "peerId", "sequence", "kubernetesVersion"}
    assert all(set(patch) <= owned for patch in peers.status_patches), peers.status_patches


# -- the Prometheus gauges of a round or a pass ------------------------------------------------------


def test_the_gauges_carry_the_original_controllers_names_and_labels_and_the_plans_counts() -> None:
    counted = SyncPlan(online=2, offline=1, synchronized=2)
    series = {
        (item["name"].rsplit("_controller_", 1)[1], item["labels"]["status"]): item["gauge"]["set"]
        for item in gauges(SCOPE, counted, refused=3)
    }
    assert series == {
        ("peers_number", "Synchronized"): 2,
        ("peers_number", "Out of sync"): 1,
        ("sync_peers_number", "Synchronized"): 2,
        ("sync_peers_number", "Out of sync"): 3,
    }
    for item in gauges(SCOPE, counted, refused=3):
        assert item["name"].startswith("cluster_discovery_controller_identity_controller_")
        assert item["description"]
        assert {key: value for key, value in item["labels"].items() if key != "status"} == {
            "identity_name": "cluster1-identity",
            "identity_namespace": "private-network-peer-configuration",
            "swarm_name": "cluster1-private",
            "swarmpool_name": "cluster1-private",
            "swarmpool_namespace": "private-network-peer-configuration",
        }


def test_without_a_refused_count_its_gauge_is_left_out_not_set_to_zero() -> None:
    statuses = [(item["name"], item["labels"]["status"]) for item in gauges(SCOPE, SyncPlan(online=1))]
    assert (SYNC_PEERS_GAUGE, "Out of sync") not in statuses
    assert len(statuses) == 3
