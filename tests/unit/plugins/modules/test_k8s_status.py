"""k8s_status's decisions as pure functions: validation, "already set", merging by type.

Covered: operator-sdk's condition validation (fields, required keys, status
values, CamelCase reason, RFC 3339 times, booleans converted), the subset rule
that makes a repeated task report no change, merging by type with
lastTransitionTime kept or stamped, the merge patch touching only the given
keys, and force's replacement. The writes to a real API server are in
tests/integration/runner.
"""

from __future__ import annotations

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.status_writer import (
    desired_patch,
    guarded_patch,
    merge_conditions,
    merged,
    replacement,
    status_contains,
    validate_conditions,
)

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def test_valid_conditions_pass_and_booleans_become_strings() -> None:
    assert validate_conditions([{"type": "Ready", "status": True, "reason": "NodeUp", "lastTransitionTime": T0}]) == [
        {"type": "Ready", "status": "True", "reason": "NodeUp", "lastTransitionTime": T0}
    ]


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        pytest.param({"type": "A", "status": "True", "colour": "x"}, "not a valid field", id="unknown-field"),
        pytest.param({"status": "True"}, "`type` must be set", id="no-type"),
        pytest.param({"type": "A"}, "`status` must be set", id="no-status"),
        pytest.param({"type": "A", "status": "Yes"}, "must be one of", id="bad-status"),
        pytest.param({"type": "A", "status": "True", "reason": "two words"}, "CamelCase", id="bad-reason"),
        pytest.param({"type": "A", "status": "True", "lastTransitionTime": "yesterday"}, "RFC 3339", id="bad-time"),
    ],
)
def test_invalid_conditions_are_named(condition: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as caught:
        validate_conditions([{"type": "Ok", "status": "True"}, condition])
    assert "conditions[1]" in str(caught.value)


CURRENT = {
    "message": "hi",
    "swarms": [{"name": "s1", "address": "/ip4/1.2.3.4"}],
    "conditions": [
        {"type": "Running", "status": "True", "reason": "Successful", "lastTransitionTime": T0},
        {"type": "NodeReady", "status": "True", "reason": "Up", "message": "ok", "lastTransitionTime": T0},
    ],
}


@pytest.mark.parametrize(
    ("wanted", "contained"),
    [
        pytest.param({"message": "hi"}, True, id="same-field"),
        pytest.param(
            {"conditions": [{"type": "NodeReady", "status": "True", "reason": "Up"}]},
            True,
            id="condition-subset-without-time",
        ),
        pytest.param({"swarms": [{"name": "s1"}]}, True, id="list-item-subset"),
        pytest.param({"message": "bye"}, False, id="changed-field"),
        pytest.param({"conditions": [{"type": "NodeReady", "status": "False"}]}, False, id="condition-flip"),
        pytest.param({"conditions": [{"type": "Other", "status": "True"}]}, False, id="new-condition"),
        pytest.param({"peers": 3}, False, id="new-field"),
    ],
)
def test_a_subset_of_the_current_status_is_no_change(wanted: dict[str, object], contained: bool) -> None:
    assert status_contains(CURRENT, wanted) is contained


def test_conditions_merge_by_type_and_keep_or_stamp_transition_times() -> None:
    merged = merge_conditions(
        CURRENT["conditions"],
        [
            {"type": "NodeReady", "status": "True", "reason": "StillUp"},
            {"type": "Peered", "status": "False", "reason": "NoPeers"},
        ],
        T1,
    )
    by_type = {c["type"]: c for c in merged}
    assert by_type["Running"] == CURRENT["conditions"][0], "other types (the operator's) are kept"
    assert by_type["NodeReady"]["lastTransitionTime"] == T0, "same status: time kept"
    assert by_type["NodeReady"]["reason"] == "StillUp"
    assert by_type["Peered"]["lastTransitionTime"] == T1, "new condition: stamped"
    flipped = merge_conditions(CURRENT["conditions"], [{"type": "NodeReady", "status": "False"}], T1)
    assert {c["type"]: c for c in flipped}["NodeReady"]["lastTransitionTime"] == T1


def test_the_patch_names_only_the_given_keys() -> None:
    patch = desired_patch(CURRENT, {"peers": 2, "conditions": [{"type": "Peered", "status": "True"}]}, T1)
    assert set(patch) == {"peers", "conditions"}
    assert [c["type"] for c in patch["conditions"]] == ["Running", "NodeReady", "Peered"]


def test_force_replaces_the_status_and_keeps_unchanged_transition_times() -> None:
    status = replacement(CURRENT, {"message": "new", "conditions": [{"type": "NodeReady", "status": "True"}]}, T1)
    assert set(status) == {"message", "conditions"}
    assert status["conditions"] == [{"type": "NodeReady", "status": "True", "lastTransitionTime": T0}]


def test_merged_applies_a_merge_patch_as_the_server_does() -> None:
    current = {"swarms": {"a": {"peers": 1, "ready": True}}, "peers": 3}
    assert merged(current, {"swarms": {"a": {"peers": 2}, "b": {"peers": 0}}, "peers": None}) == {
        "swarms": {"a": {"peers": 2, "ready": True}, "b": {"peers": 0}}
    }
    assert merged([1], {"a": [2]}) == {"a": [2]}
    assert current == {"swarms": {"a": {"peers": 1, "ready": True}}, "peers": 3}


def test_the_guarded_patch_tests_exactly_the_keys_it_writes() -> None:
    before = {"peers": 3, "gone": 1, "conditions": [{"type": "Running", "status": "True"}], "a/b~": {"x": 1}}
    operations = guarded_patch(before, {"conditions": [], "gone": None, "absent": None, "a/b~": {"y": 2}})
    assert operations == [
        {"op": "test", "path": "/status/conditions", "value": [{"type": "Running", "status": "True"}]},
        {"op": "add", "path": "/status/conditions", "value": []},
        {"op": "test", "path": "/status/gone", "value": 1},
        {"op": "remove", "path": "/status/gone"},
        {"op": "test", "path": "/status/a~1b~0", "value": {"x": 1}},
        {"op": "add", "path": "/status/a~1b~0", "value": {"x": 1, "y": 2}},
    ]


def test_an_object_without_a_status_gets_one_only_if_it_still_has_none() -> None:
    assert guarded_patch(None, {"peers": 1, "gone": None}) == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {"peers": 1}},
    ]
