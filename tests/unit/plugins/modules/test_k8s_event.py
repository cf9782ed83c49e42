"""k8s_event's Event body: operator-sdk's options, counting repeats of the same reason."""

from __future__ import annotations

import datetime
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.event_recorder import build_event

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
PARAMS: dict[str, Any] = {
    "name": "w-joined",
    "namespace": "ns",
    "message": "joined",
    "reason": "SwarmJoined",
    "type": "Normal",
    "reportingComponent": "cluster-discovery-operator",
    "source": None,
    "appendTimestamp": False,
}


def test_a_new_event() -> None:
    involved = {"apiVersion": "x.io/v1", "kind": "Widget", "name": "w", "namespace": "ns", "uid": "u"}
    event = build_event(PARAMS, NOW, involved)
    assert event["metadata"] == {"name": "w-joined", "namespace": "ns"}
    assert (event["count"], event["firstTimestamp"], event["lastTimestamp"]) == (
        1,
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05Z",
    )
    assert event["source"] == {"component": "cluster-discovery-operator"}
    assert event["involvedObject"] == involved


def test_the_same_reason_counts_up_and_keeps_the_first_time() -> None:
    prior = {"reason": "SwarmJoined", "count": 4, "firstTimestamp": "2025-12-31T00:00:00Z"}
    event = build_event(PARAMS, NOW, None, prior)
    assert (event["count"], event["firstTimestamp"]) == (5, "2025-12-31T00:00:00Z")
    other = build_event({**PARAMS, "reason": "SwarmLeft"}, NOW, None, prior)
    assert other["count"] == 1


def test_append_timestamp_makes_a_new_name_each_time() -> None:
    event = build_event({**PARAMS, "appendTimestamp": True}, NOW)
    assert event["metadata"]["name"].startswith("w-joined.")
    assert event["metadata"]["name"] != "w-joined"
