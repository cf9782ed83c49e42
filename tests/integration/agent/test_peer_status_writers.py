"""Two writers of one Peer's status lose nothing of each other's, on a real API server (issue 20).

The agent's fast path (peer_sync.apply, through the operator's client) writes
a Peer's liveness fields; the peer role's check (k8s_status, through
kubernetes.core's client) writes its Reachable condition. At 40 members a
pass of the agent used to merge-patch the whole status from a copy read at
the start of its pass, 36-113 ms after the check had written its condition,
and the condition was gone until the next check. Each writer now writes only
the fields it owns, and the check's write carries the resourceVersion it was
computed from, retried on conflict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import status_writer
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    API_VERSION,
    GROUP,
    peer_name,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    ONLINE,
    Scope,
    apply,
    plan,
    selector,
)
from cluster_discovery_agent.objects import PEERS, SECRETS, KindObjects
from cluster_discovery_operator.kube import KubeClient
from cluster_discovery_operator.settings import KubeSettings

from testbed.controlplane import ControlPlane
from tests.kubeconfigs import kubeconfig_text

pytestmark = pytest.mark.integration

CRD = Path(__file__).resolve().parents[3] / "config" / "crd" / "bases" / f"{GROUP}_peers.yaml"
MEMBER = "QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"
ROUNDS = 60


class CheckTask:
    """What the k8s_status task needs of its module: the peer role's Reachable condition for one Peer."""

    def __init__(self, namespace: str, reachable: bool, message: str) -> None:
        self.params: dict[str, Any] = {
            "api_version": API_VERSION,
            "kind": "Peer",
            "name": peer_name(MEMBER),
            "namespace": namespace,
            "status": None,
            "force": False,
            "conditions": [
                {
                    "type": "Reachable",
                    "status": "True" if reachable else "False",
                    "reason": "APIServerAnswered" if reachable else "APIServerUnreachable",
                    "message": message,
                }
            ],
        }
        self.check_mode = False
        self._diff = False

    def fail_json(self, **fields: Any) -> NoReturn:
        raise AssertionError(fields.get("msg"))

    def warn(self, warning: str) -> None:
        pass


def heard(sequence: int) -> dict[str, Any]:
    return {
        "peer_id": MEMBER,
        "sequence": sequence,
        "name": "Cluster 2",
        "description": f"version {sequence}",
        "url": "https://192.0.2.2:6443",
        "categories": ["computing"],
        "kubernetes_version": "v1.37.2",
        "kubeconfig": kubeconfig_text("cluster2", token="token-of-cluster2"),
    }


@pytest.fixture
def writers(control_plane: ControlPlane) -> tuple[Scope, KindObjects, KindObjects, Any]:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    control_plane.wait_established(f"peers.{GROUP}")
    namespace = control_plane.create_namespace("writers")
    scope = Scope(
        identity_name="cluster1-identity",
        identity_namespace=namespace,
        identity_uid=None,
        namespace=namespace,
        swarm_pool="cluster1",
        swarm="private",
    )
    kube = KubeClient(KubeSettings(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name))
    peers, secrets = KindObjects(kube, PEERS), KindObjects(kube, SECRETS)
    client = get_api_client(kubeconfig=str(control_plane.kubeconfig), context=control_plane.name)
    return scope, peers, secrets, client


def agent_pass(scope: Scope, peers: KindObjects, secrets: KindObjects, *, sequence: int, live: bool) -> None:
    """One fast-path pass for news of the member: read the Peers, plan, apply."""
    existing = peers.list(scope.namespace, label_selector=selector(scope))
    agent_applies(scope, peers, secrets, existing, sequence=sequence, live=live)


def agent_applies(
    scope: Scope, peers: KindObjects, secrets: KindObjects, existing: list[dict[str, Any]], *, sequence: int, live: bool
) -> None:
    decided = plan(
        scope,
        existing=existing,
        discovered=[heard(sequence)] if live else [],
        removed={},
        refused=[],
        now="2026-12-01T03:00:00Z",
        offline_after=1,
        forget_after=1440,
        count_misses=False,
        silent=[] if live else [MEMBER],
    )
    done = apply(decided, scope, peers=peers, secrets=secrets, check_mode=False)
    assert not done.failed, done.failed


def peer_check(scope: Scope, client: Any, *, reachable: bool, message: str) -> None:
    result = status_writer.execute(CheckTask(scope.namespace, reachable, message), lambda: client)
    assert "result" in result


class WriterBetweenReadAndWrite:
    """kubernetes.core's client, with another writer's write after each read the check makes."""

    def __init__(self, client: Any, write: Callable[[], None]) -> None:
        self._client = client
        self._write = write
        self.reads = 0

    def get(self, *args: Any, **kwargs: Any) -> Any:
        found = self._client.get(*args, **kwargs)
        self.reads += 1
        self._write()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_the_checks_condition_survives_an_agent_pass_that_read_the_peer_before_it(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    scope, peers, secrets, client = writers
    agent_pass(scope, peers, secrets, sequence=1, live=True)
    # The order that lost the condition: the agent reads, the check writes, the agent writes what it planned.
    existing = peers.list(scope.namespace, label_selector=selector(scope))
    peer_check(scope, client, reachable=True, message="Kubernetes v1.37.2 answered at https://192.0.2.2:6443")
    agent_applies(scope, peers, secrets, existing, sequence=2, live=True)

    status = peers.get(peer_name(MEMBER), scope.namespace)["status"]  # type: ignore[index]
    assert status["sequence"] == 2 and status["status"] == ONLINE
    (reachable,) = status["conditions"]
    assert (reachable["type"], reachable["status"], reachable["reason"]) == ("Reachable", "True", "APIServerAnswered")


def test_the_agent_writing_between_each_read_and_write_of_the_check_never_holds_the_check_back(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    # An agent that writes the Peer as often as the check reads it: a precondition on the whole object
    # (its resourceVersion) lost every attempt; the check's write depends only on the conditions it read.
    scope, peers, secrets, client = writers
    agent_pass(scope, peers, secrets, sequence=1, live=True)
    sequences = iter(range(2, 100))

    def agent_writes() -> None:
        agent_pass(scope, peers, secrets, sequence=next(sequences), live=True)

    racing = WriterBetweenReadAndWrite(client, agent_writes)
    peer_check(scope, racing, reachable=True, message="Kubernetes v1.37.2 answered at https://192.0.2.2:6443")

    assert racing.reads == 1
    status = peers.get(peer_name(MEMBER), scope.namespace)["status"]  # type: ignore[index]
    assert (status["status"], status["sequence"]) == (ONLINE, 2)
    (reachable,) = status["conditions"]
    assert (reachable["type"], reachable["status"]) == ("Reachable", "True")


def test_a_condition_another_writer_adds_between_the_checks_read_and_write_is_kept(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    scope, peers, secrets, client = writers
    agent_pass(scope, peers, secrets, sequence=1, live=True)
    other = CheckTask(scope.namespace, True, "another writer's condition")
    other.params["conditions"] = [{"type": "Audited", "status": "True", "reason": "Audited", "message": "seen"}]
    pending = [other]

    def another_condition_writer() -> None:
        while pending:
            status_writer.execute(pending.pop(), lambda: client)

    racing = WriterBetweenReadAndWrite(client, another_condition_writer)
    peer_check(scope, racing, reachable=False, message="no answer at https://192.0.2.2:6443")

    assert racing.reads == 2  # the first write was refused: the conditions it was computed from had changed
    conditions = {c["type"]: c for c in peers.get(peer_name(MEMBER), scope.namespace)["status"]["conditions"]}  # type: ignore[index]
    assert sorted(conditions) == ["Audited", "Reachable"]
    assert (conditions["Reachable"]["status"], conditions["Audited"]["message"]) == ("False", "seen")


def test_a_status_the_schema_refuses_is_reported_with_the_servers_words_not_retried(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    scope, peers, secrets, client = writers
    agent_pass(scope, peers, secrets, sequence=1, live=True)
    task = CheckTask(scope.namespace, True, "unused")
    task.params.update(conditions=None, status={"sequence": "not a number"})
    reads = WriterBetweenReadAndWrite(client, lambda: None)

    with pytest.raises(AssertionError, match=r"Failed to update status of Peer .*sequence.*integer"):
        status_writer.execute(task, lambda: reads)
    assert reads.reads == 2  # the write, then one read that found nothing changed: no retry
    assert peers.get(peer_name(MEMBER), scope.namespace)["status"]["sequence"] == 1  # type: ignore[index]


def test_the_agent_and_the_check_racing_on_one_peer_each_keep_their_last_word(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    scope, peers, secrets, client = writers
    agent_pass(scope, peers, secrets, sequence=1, live=True)
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def agent() -> None:
        try:
            start.wait()
            for round_number in range(2, ROUNDS + 2):
                # News flips the member between heard (a new document) and silent (Offline).
                agent_pass(scope, peers, secrets, sequence=round_number, live=round_number % 3 != 0)
        except BaseException as err:
            errors.append(err)

    def check() -> None:
        try:
            start.wait()
            for round_number in range(ROUNDS):
                peer_check(scope, client, reachable=round_number % 2 == 0, message=f"check {round_number}")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=agent), threading.Thread(target=check)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors

    status = peers.get(peer_name(MEMBER), scope.namespace)["status"]  # type: ignore[index]
    # The agent's last pass: round ROUNDS + 1 heard the member (not a multiple of 3) with that sequence.
    last = ROUNDS + 1
    assert last % 3 != 0
    assert (status["status"], status["sequence"]) == (ONLINE, last)
    # The check's last write: round ROUNDS - 1, odd, so unreachable.
    (reachable,) = status["conditions"]
    assert (reachable["status"], reachable["message"]) == ("False", f"check {ROUNDS - 1}")


def role_round(
    scope: Scope, peers: KindObjects, secrets: KindObjects, *, now: str, heard_at: str, live: bool, agent: bool = False
) -> dict[str, Any]:
    """One discovery round of the identity role (misses counted) in which the member was last heard at ``heard_at``;
    with ``agent``, a pass of the agent's fast path instead (no misses; a member not live is silent, Offline at once).
    """
    decided = plan(
        scope,
        existing=peers.list(scope.namespace, label_selector=selector(scope)),
        discovered=[{**heard(1), "heard_at": heard_at}] if live else [],
        removed={},
        refused=[],
        now=now,
        offline_after=1,
        forget_after=1440,
        count_misses=not agent,
        silent=[MEMBER] if agent and not live else [],
        last_heard={MEMBER: heard_at},
    )
    done = apply(decided, scope, peers=peers, secrets=secrets, check_mode=False)
    assert not done.failed, done.failed
    found = peers.get(peer_name(MEMBER), scope.namespace)
    assert found is not None
    return found


def test_rounds_that_hear_a_steady_member_write_nothing_and_offline_shows_when_it_was_last_heard(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    """Issue 20: liveness is what was heard; a Peer is written when it changes, not to move a timestamp."""
    scope, peers, secrets, _ = writers
    first = role_round(scope, peers, secrets, now="2026-12-01T03:00:00Z", heard_at="2026-12-01T02:59:58Z", live=True)
    assert first["status"]["lastSeen"] == "2026-12-01T02:59:58Z"
    for minute in (6, 12, 30):  # rounds an hour apart would write nothing either
        now = f"2026-12-01T03:{minute:02d}:00Z"
        again = role_round(scope, peers, secrets, now=now, heard_at=now, live=True)
        assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], f"written at {now}"
    offline = role_round(scope, peers, secrets, now="2026-12-01T03:35:00Z", heard_at="2026-12-01T03:32:10Z", live=False)
    assert (offline["status"]["status"], offline["status"]["lastSeen"]) == ("Offline", "2026-12-01T03:32:10Z")
    later = role_round(scope, peers, secrets, now="2026-12-01T03:36:00Z", heard_at="2026-12-01T03:32:10Z", live=False)
    assert (later["status"]["missingCounter"], later["status"]["lastSeen"]) == (2, "2026-12-01T03:32:10Z")


def test_a_round_that_learned_the_members_before_the_agents_last_word_does_not_undo_it(
    writers: tuple[Scope, KindObjects, KindObjects, Any],
) -> None:
    """Issue 19: the role learns the members, then lists the Peers and writes; under load seconds apart. CI saw a
    round that learned a member still live (heard 70 s before, inside the Offline time) write its Peer back Online,
    with no misses, after the agent had turned it Offline. A round now turns an Offline Peer Online only when it
    heard the member after the Peer's lastSeen, as the agent does when the member announces again."""
    scope, peers, secrets, _ = writers
    role_round(scope, peers, secrets, now="2026-12-01T03:00:00Z", heard_at="2026-12-01T02:59:58Z", live=True)
    offline = role_round(
        scope, peers, secrets, now="2026-12-01T03:02:00Z", heard_at="2026-12-01T03:00:30Z", live=False, agent=True
    )
    assert (offline["status"]["status"], offline["status"]["missingCounter"]) == ("Offline", 1)
    stale = role_round(scope, peers, secrets, now="2026-12-01T03:02:05Z", heard_at="2026-12-01T03:00:30Z", live=True)
    assert (stale["status"]["status"], stale["status"]["missingCounter"]) == ("Offline", 1), "a stale Online"
    assert stale["metadata"]["resourceVersion"] == offline["metadata"]["resourceVersion"]

    back = role_round(
        scope, peers, secrets, now="2026-12-01T03:03:01Z", heard_at="2026-12-01T03:03:00Z", live=True, agent=True
    )
    assert (back["status"]["status"], back["status"]["lastSeen"]) == ("Online", "2026-12-01T03:03:00Z")
    fresh = role_round(scope, peers, secrets, now="2026-12-01T03:06:00Z", heard_at="2026-12-01T03:03:00Z", live=False)
    assert (fresh["status"]["status"], fresh["status"]["missingCounter"]) == ("Offline", 1), "silent since"
    fresh = role_round(scope, peers, secrets, now="2026-12-01T03:07:00Z", heard_at="2026-12-01T03:06:30Z", live=True)
    assert (fresh["status"]["status"], fresh["status"]["missingCounter"]) == ("Online", 0), "heard again"
