"""The identity role's decisions, made in module_utils/identity_spec.py: what a spec must hold, when to renew."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.identity import FilterModule
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity_spec import (
    needs_full_sync,
    spec_problem,
)

FILTERS = FilterModule().filters()
SWARM = {"namespace": "cluster1", "swarm_pool": "cluster1", "swarm": "cluster1-private"}
NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def test_the_manuals_identity_has_no_problem() -> None:
    assert spec_problem("Cluster 1", "https://203.0.113.7:6443", [SWARM], [{"name": "Computing"}]) == ""
    assert spec_problem("Cluster 1", "", [SWARM], []) == ""
    assert FILTERS["identity_spec_problem"]("Cluster 1", "", [SWARM]) == ""


@pytest.mark.parametrize(
    ("name", "url", "swarms", "categories", "problem"),
    [
        pytest.param("   ", "", [SWARM], [], "spec.name must not be empty", id="blank-name"),
        pytest.param(None, "", [SWARM], [], "spec.name must not be empty", id="no-name"),
        pytest.param("c", "ftp://x", [SWARM], [], "spec.URL must be an http or https URL", id="ftp"),
        pytest.param("c", "http://[", [SWARM], [], "spec.URL must be an http or https URL", id="bracket"),
        pytest.param("c", "http://a b", [SWARM], [], "spec.URL must be an http or https URL", id="space"),
        pytest.param("c", 7, [SWARM], [], "spec.URL must be an http or https URL", id="number"),
        pytest.param("c", "", [], [], "spec.swarms must list at least one swarm", id="no-swarm"),
        pytest.param("c", "", "swarm", [], "spec.swarms must list at least one swarm", id="text-swarms"),
        pytest.param("c", "", [SWARM], [{"label": "x"}], "every category needs a name", id="nameless-category"),
        pytest.param("c", "", [SWARM], "x", "spec.categories must be a list", id="text-categories"),
        pytest.param(
            "c", "", [{"namespace": "a", "swarm": "b"}], [], "needs namespace, swarmPool and swarm", id="no-pool"
        ),
        pytest.param("c", "", ["cluster1"], [], "needs namespace, swarmPool and swarm", id="text-entry"),
    ],
)
def test_each_fault_of_a_spec_is_named(name: Any, url: Any, swarms: Any, categories: Any, problem: str) -> None:
    assert problem in spec_problem(name, url, swarms, categories)


def _identity(generation: int = 3, uid: str = "uid-a", **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation, "uid": uid}, "status": status}


def _synced(published: int = 1, uid: str = "uid-a") -> dict[str, Any]:
    return _identity(fullSyncGeneration=3, uid=uid, swarms=[{"published": True}] * published + [{"published": False}])


def _renewals(
    identity: dict[str, Any], *, hours: float = 2, round_seconds: float = 120, every: float = 300
) -> list[int]:
    """The rounds, one every ``round_seconds`` plus a 7-s run, that renew over ``hours``; as seconds from the start."""
    start, step = NOW.timestamp(), round_seconds + 7
    rounds = [start + i * step for i in range(int(hours * 3600 / step))]
    return [int(t - start) for t in rounds if needs_full_sync(identity, every, 1, round_seconds, now=t)]


def test_a_steady_identity_renews_once_or_twice_in_every_full_sync_period_and_writes_no_time_for_it() -> None:
    renewals = _renewals(_synced())
    gaps = [later - earlier for earlier, later in itertools.pairwise(renewals)]
    assert 2 * 3600 / 300 <= len(renewals) <= 2 * 2 * 3600 / 300
    assert max(gaps) <= 300 + 127, "a renewal in every window of 5 minutes"
    assert len(renewals) < len(range(int(2 * 3600 / 127))), "the rounds in between only discover"


def test_identities_renew_at_different_times() -> None:
    assert _renewals(_synced(uid="uid-a"), hours=0.5) != _renewals(_synced(uid="uid-b"), hours=0.5)


@pytest.mark.parametrize(
    ("identity", "why"),
    [
        pytest.param(_identity(), "never synced", id="new"),
        pytest.param({**_synced(), "metadata": {"generation": 4}}, "the spec changed", id="spec-changed"),
        pytest.param(_synced(published=0), "a swarm is not published", id="unpublished"),
        pytest.param({}, "no metadata nor status", id="empty"),
    ],
)
def test_a_full_sync_is_due_in_every_round(identity: dict[str, Any], why: str) -> None:
    assert len(_renewals(identity, hours=0.5)) == len(range(int(0.5 * 3600 / 127))), why


def test_a_full_sync_period_no_longer_than_a_round_renews_in_every_round() -> None:
    assert len(_renewals(_synced(), hours=0.5, every=100)) == len(range(int(0.5 * 3600 / 127)))


def test_the_filter_reads_its_arguments_as_ansible_passes_them() -> None:
    assert FILTERS["identity_needs_full_sync"](_synced(), "300", "1", "300") is True
    assert FILTERS["identity_needs_full_sync"](_identity(), 86400, 1, 120) is True
