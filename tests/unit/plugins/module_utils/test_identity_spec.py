"""The identity role's decisions, made in module_utils/identity_spec.py: what a spec must hold, when to renew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def _identity(generation: int = 3, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": generation}, "status": status}


def _synced(seconds_ago: float, published: int = 1) -> dict[str, Any]:
    return _identity(
        fullSyncGeneration=3,
        lastFullSync=(NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        swarms=[{"published": True}] * published + [{"published": False}],
    )


def test_a_recent_full_sync_of_this_generation_with_every_swarm_published_is_not_renewed() -> None:
    assert needs_full_sync(_synced(30), 3600, 1, now=NOW) is False


@pytest.mark.parametrize(
    ("identity", "why"),
    [
        pytest.param(_identity(), "never synced", id="new"),
        pytest.param({**_synced(30), "metadata": {"generation": 4}}, "the spec changed", id="spec-changed"),
        pytest.param(_synced(3600), "the period passed", id="period"),
        pytest.param(_synced(30, published=0), "a swarm is not published", id="unpublished"),
        pytest.param(_identity(fullSyncGeneration=3, lastFullSync="yesterday"), "unreadable time", id="bad-time"),
        pytest.param({}, "no metadata nor status", id="empty"),
    ],
)
def test_a_full_sync_is_due(identity: dict[str, Any], why: str) -> None:
    assert needs_full_sync(identity, 3600, 1, now=NOW) is True, why


def test_the_filter_compares_with_the_clock() -> None:
    fresh = _identity(
        fullSyncGeneration=3,
        lastFullSync=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        swarms=[{"published": True}],
    )
    assert FILTERS["identity_needs_full_sync"](fresh, "86400", "1") is False
    assert FILTERS["identity_needs_full_sync"](fresh, 0, 1) is True
