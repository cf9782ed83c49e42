"""Leader election: client-go's rules on an in-memory Lease with resourceVersion preconditions.

Covered: the first candidate creates the Lease and leads; a second waits while
the holder renews; it takes over only after lease_duration of silence measured
on its own clock; two racing candidates cannot both win (409); release empties
the holder so a standby takes over at its next attempt; a leader that cannot
renew within renew_deadline stops leading. The real Lease is exercised in
tests/integration/runner.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any

from cluster_discovery_operator.kube import ConflictError, NotFoundError
from cluster_discovery_operator.leadership import LeaderElector
from cluster_discovery_operator.settings import LeadershipSettings


class LeaseStore:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self._rv = itertools.count(1)
        self.fail = False

    def get_lease(self, *, namespace: str, name: str) -> dict[str, Any]:
        if self.fail:
            from cluster_discovery_operator.kube import TemporaryKubeError

            raise TemporaryKubeError("API server unreachable")
        if self.lease is None:
            raise NotFoundError("no lease", status=404)
        return copy.deepcopy(self.lease)

    def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ConflictError("exists", status=409)
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(self.lease)

    def replace_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError("modified", status=409)
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def elector(store: LeaseStore, clock: Clock, identity: str, **callbacks: Any) -> LeaderElector:
    return LeaderElector(
        store,  # type: ignore[arg-type]
        LeadershipSettings(enabled=True, lease_name="lock", identity=identity),
        namespace="ops",
        on_started_leading=callbacks.get("started", lambda: None),
        on_stopped_leading=callbacks.get("stopped", lambda: None),
        clock=clock,
    )


def test_the_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "a"
    assert store.lease["spec"]["leaseDurationSeconds"] == 15
    assert not b.try_acquire_or_renew()
    clock.now += 10
    assert a.try_acquire_or_renew(), "the holder renews"
    assert not b.try_acquire_or_renew(), "a renewed lease is observed as fresh"
    clock.now += 14.9
    assert not b.try_acquire_or_renew()
    assert b.holder == "a"


def test_a_silent_holder_is_replaced_after_the_lease_duration_by_the_standbys_clock() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.now += 15
    assert b.try_acquire_or_renew()
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    store, clock = LeaseStore(), Clock()
    assert elector(store, clock, "old").try_acquire_or_renew()
    b, c = elector(store, clock, "b"), elector(store, clock, "c")
    assert not b.try_acquire_or_renew() and not c.try_acquire_or_renew()
    clock.now += 20
    assert b.try_acquire_or_renew()
    c._observed_at = -100.0  # c last saw the old holder long ago, but its resourceVersion is stale
    assert not c.try_acquire_or_renew()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"


def test_release_lets_a_standby_take_over_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    started = threading.Event()
    a = elector(store, clock, "a", started=started.set)
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,))
    thread.start()
    assert started.wait(5) and a.is_leader
    stop.set()
    thread.join(5)
    a.release()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == ""
    b = elector(store, clock, "b")
    assert b.try_acquire_or_renew(), "no wait for expiry after a release"


def test_a_leader_that_cannot_renew_stops_leading() -> None:
    store, _clock = LeaseStore(), Clock()
    stopped = threading.Event()
    a = LeaderElector(
        store,  # type: ignore[arg-type]
        LeadershipSettings(enabled=True, lease_name="lock", identity="a", renew_deadline=0.2, retry_period=0.05),
        namespace="ops",
        on_started_leading=lambda: None,
        on_stopped_leading=stopped.set,
    )
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,))
    thread.start()
    for _ in range(100):
        if a.is_leader:
            break
        stop.wait(0.01)
    store.fail = True
    assert stopped.wait(5)
    assert not a.is_leader
    thread.join(5)
