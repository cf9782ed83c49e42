"""Status conditions: operator-sdk's vocabulary and SetCondition rules, as pure functions.

Covered: Running before a run, Successful/Failure after one (with ansibleResult
and the failed task's message), markError, the SetCondition rules (no rewrite
on same status and reason except Failure, lastTransitionTime kept unless the
status flips, updated condition moves last), role-set conditions surviving,
the status patch touching only conditions and observedGeneration, and the
Warning Event.
"""

from __future__ import annotations

from cluster_discovery_operator.bodies import Condition
from cluster_discovery_operator.status import (
    ansible_result,
    conditions_of,
    done_conditions,
    error_conditions,
    failure_event,
    get_condition,
    new_condition,
    running_conditions,
    set_condition,
    status_patch,
)

T0, T1, T2 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"


def _by_type(conditions: list[Condition]) -> dict[str, Condition]:
    return {c["type"]: c for c in conditions}


def test_running_before_the_first_run() -> None:
    conditions = running_conditions([], now=T0)
    assert conditions == [
        {
            "type": "Running",
            "status": "True",
            "lastTransitionTime": T0,
            "reason": "Running",
            "message": "Running reconciliation",
        }
    ]


def test_a_successful_run_gives_operator_sdks_three_conditions() -> None:
    result = ansible_result({"ok": 3, "changed": 1, "skipped": 2, "failures": 0}, "2026-01-01T00:01:00.5+00:00")
    conditions = done_conditions(
        running_conditions([], now=T0), succeeded=True, ansible_result=result, failure_message="", now=T1
    )
    by_type = _by_type(conditions)
    assert by_type["Running"] == {
        "type": "Running",
        "status": "True",
        "lastTransitionTime": T0,
        "reason": "Successful",
        "message": "Awaiting next reconciliation",
        "ansibleResult": result,
    }
    assert by_type["Successful"]["status"] == "True"
    assert by_type["Successful"]["message"] == "Last reconciliation succeeded"
    assert (by_type["Failure"]["status"], by_type["Failure"]["reason"], by_type["Failure"]["message"]) == (
        "False",
        "",
        "",
    )
    assert result == {"ok": 3, "changed": 1, "skipped": 2, "failures": 0, "completion": "2026-01-01T00:01:00.5+00:00"}


def test_a_failed_run_reports_the_tasks_message() -> None:
    previous = done_conditions(
        running_conditions([], now=T0), succeeded=True, ansible_result=None, failure_message="", now=T0
    )
    running = running_conditions(previous, now=T1)
    assert _by_type(running)["Successful"]["status"] == "False"
    result = ansible_result({"ok": 1, "failures": 1}, T2)
    conditions = done_conditions(
        running, succeeded=False, ansible_result=result, failure_message="widget w refused: no", now=T2
    )
    by_type = _by_type(conditions)
    assert by_type["Failure"] == {
        "type": "Failure",
        "status": "True",
        "lastTransitionTime": T2,
        "reason": "Failed",
        "message": "widget w refused: no",
        "ansibleResult": result,
    }
    assert by_type["Running"]["status"] == "False"
    assert by_type["Successful"]["status"] == "False"


def test_error_before_a_run_marks_failure() -> None:
    conditions = error_conditions(running_conditions([], now=T0), message="Unable to parse reconcile period", now=T1)
    by_type = _by_type(conditions)
    assert by_type["Failure"]["status"] == "True"
    assert by_type["Failure"]["message"] == "Unable to parse reconcile period"
    assert by_type["Running"]["status"] == "False"


def test_set_condition_keeps_same_status_and_reason_except_failure() -> None:
    current = [new_condition("Successful", "True", reason="Successful", message="old", now=T0)]
    same = set_condition(current, new_condition("Successful", "True", reason="Successful", message="new", now=T1))
    assert same == current, "same status and reason: not rewritten"
    failure = [new_condition("Failure", "True", reason="Failed", message="first", now=T0)]
    updated = set_condition(failure, new_condition("Failure", "True", reason="Failed", message="second", now=T1))
    assert updated[0]["message"] == "second", "Failure's message is always refreshed"
    assert updated[0]["lastTransitionTime"] == T0, "status unchanged: transition time kept"


def test_set_condition_moves_the_updated_condition_last_and_stamps_flips() -> None:
    current = [
        new_condition("A", "True", reason="X", message="", now=T0),
        new_condition("B", "True", reason="X", message="", now=T0),
    ]
    updated = set_condition(current, new_condition("A", "False", reason="Y", message="", now=T1))
    assert [c["type"] for c in updated] == ["B", "A"]
    assert get_condition(updated, "A") is not None and get_condition(updated, "A")["lastTransitionTime"] == T1


def test_role_conditions_survive_the_runners_writes() -> None:
    """A condition type set by the role (k8s_status) is kept by Running and by Done."""
    role = [{"type": "NodeReady", "status": "True", "reason": "Up", "message": "", "lastTransitionTime": T0}]
    conditions = running_conditions(role, now=T1)  # type: ignore[arg-type]
    conditions = done_conditions(conditions, succeeded=True, ansible_result=None, failure_message="", now=T2)
    assert _by_type(conditions)["NodeReady"] == role[0]


def test_status_patch_touches_only_conditions_and_observed_generation() -> None:
    current = {"conditions": [], "peers": 3, "observedGeneration": 1}
    conditions = running_conditions([], now=T0)
    assert status_patch(current, conditions, observed_generation=2) == {
        "conditions": conditions,
        "observedGeneration": 2,
    }
    settled = {"conditions": conditions, "peers": 3, "observedGeneration": 2}
    assert status_patch(settled, conditions_of(settled), observed_generation=2) is None


def test_failure_event_is_a_warning_about_the_object() -> None:
    obj = {
        "apiVersion": "x.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "uid": "u", "resourceVersion": "9"},
    }
    event = failure_event(
        obj, reason="ReconcileFailed", message="boom", now=T0, component="c", instance="i", name_suffix="abc"
    )
    assert event["metadata"] == {"name": "w.abc", "namespace": "ns"}
    assert event["involvedObject"] == {
        "apiVersion": "x.io/v1",
        "kind": "Widget",
        "name": "w",
        "uid": "u",
        "resourceVersion": "9",
        "namespace": "ns",
    }
    assert (event["type"], event["reason"], event["message"], event["count"]) == (
        "Warning",
        "ReconcileFailed",
        "boom",
        1,
    )
