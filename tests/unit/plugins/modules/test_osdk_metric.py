"""osdk_metric's request building: operator-sdk's options, plus labels, validated before the operator sees them."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import build_metric

BASE: dict[str, Any] = {
    "name": "peers",
    "description": "Peers",
    "address": None,
    "labels": {},
    "counter": None,
    "gauge": None,
    "histogram": None,
    "summary": None,
}


def params(**kwargs: Any) -> dict[str, Any]:
    return {**BASE, **kwargs}


def test_a_gauge_with_labels_keeps_zero_and_drops_unset_suboptions() -> None:
    gauge = {
        "set": 0.0,
        "increment": None,
        "decrement": None,
        "add": None,
        "subtract": None,
        "set_to_current_time": None,
    }
    assert build_metric(params(labels={"identity_name": "a", "count": 3}, gauge=gauge)) == {
        "name": "peers",
        "description": "Peers",
        "labels": {"identity_name": "a", "count": "3"},
        "gauge": {"set": 0.0},
    }


def test_a_bare_counter_is_a_declaration() -> None:
    assert build_metric(params(counter={"increment": None, "add": None})) == {
        "name": "peers",
        "description": "Peers",
        "counter": {},
    }


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        pytest.param({"gauge": {"set": 1.0}, "counter": {"add": 1.0}}, "exactly one", id="two-types"),
        pytest.param({}, "exactly one", id="no-type"),
        pytest.param({"name": "9lives", "gauge": {}}, "not a valid Prometheus metric name", id="bad-name"),
        pytest.param({"name": "cluster_discovery_operator_x", "gauge": {}}, "reserved", id="reserved"),
        pytest.param({"labels": {"__x": "1"}, "gauge": {}}, "label name", id="reserved-label"),
        pytest.param({"counter": {"add": -2.0}}, "cannot decrease", id="negative-counter"),
    ],
)
def test_bad_requests_fail_the_task(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        build_metric(params(**overrides))
