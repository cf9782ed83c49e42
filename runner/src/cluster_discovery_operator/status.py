"""Status conditions as pure functions, with operator-sdk's vocabulary and rules.

operator-sdk (``internal/ansible/controller/status``) writes three condition
types: Running, Successful and Failure, with reasons Running, Successful,
Failed and Unknown and the messages "Running reconciliation", "Awaiting next
reconciliation" and "Last reconciliation succeeded". Its ``SetCondition`` rule
is kept exactly, because users and dashboards read these conditions:

- a condition with the same status and reason as the current one is not
  rewritten (so lastTransitionTime and message stay), except Failure, whose
  message is always refreshed;
- lastTransitionTime only moves when the status flips;
- the updated condition moves to the end of the list.

Everything else in ``status`` belongs to the role (set with k8s_status) and is
never touched: the runner only ever writes ``status.conditions`` (merged by type,
so a role's own condition types survive) and ``status.observedGeneration``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, cast

from .bodies import AnsibleResult, Condition, Event, KubeObject, ObjectReference, metadata

RUNNING = "Running"
SUCCESSFUL = "Successful"
FAILURE = "Failure"

REASON_RUNNING = "Running"
REASON_SUCCESSFUL = "Successful"
REASON_FAILED = "Failed"
REASON_UNKNOWN = "Unknown"

MESSAGE_RUNNING = "Running reconciliation"
MESSAGE_AWAITING = "Awaiting next reconciliation"
MESSAGE_SUCCEEDED = "Last reconciliation succeeded"

EVENT_REASON_FAILED = "ReconcileFailed"
EVENT_REASON_FINALIZER_FAILED = "FinalizerFailed"


def now_rfc3339(moment: datetime.datetime | None = None) -> str:
    """metav1.Time's format: UTC, whole seconds."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_of(status: Mapping[str, Any]) -> list[Condition]:
    """The conditions list of a status, dropping entries that are not objects (as operator-sdk does)."""
    raw = status.get("conditions")
    if not isinstance(raw, list):
        return []
    return [cast(Condition, dict(item)) for item in raw if isinstance(item, Mapping)]


def get_condition(conditions: Sequence[Condition], condition_type: str) -> Condition | None:
    for condition in conditions:
        if condition.get("type") == condition_type:
            return condition
    return None


def new_condition(
    condition_type: str,
    status: str,
    *,
    reason: str,
    message: str,
    now: str,
    ansible_result: AnsibleResult | None = None,
) -> Condition:
    condition = Condition(type=condition_type, status=status, lastTransitionTime=now, reason=reason, message=message)
    if ansible_result is not None:
        condition["ansibleResult"] = ansible_result
    return condition


def set_condition(conditions: list[Condition], condition: Condition) -> list[Condition]:
    """operator-sdk's SetCondition, returning a new list."""
    current = get_condition(conditions, condition["type"])
    if (
        current is not None
        and condition["type"] != FAILURE
        and current.get("status") == condition.get("status")
        and current.get("reason") == condition.get("reason")
    ):
        return list(conditions)
    updated = cast(Condition, dict(condition))
    if current is not None and current.get("status") == condition.get("status") and "lastTransitionTime" in current:
        updated["lastTransitionTime"] = current["lastTransitionTime"]
    return [c for c in conditions if c.get("type") != condition["type"]] + [updated]


def _with_status(conditions: list[Condition], condition_type: str, status: str) -> list[Condition]:
    """Flip an existing condition's status, keeping its reason and message (operator-sdk's markRunning/markError)."""
    current = get_condition(conditions, condition_type)
    if current is None:
        return conditions
    flipped = cast(Condition, dict(current))
    flipped["status"] = status
    return set_condition(conditions, flipped)


def running_conditions(conditions: list[Condition], *, now: str) -> list[Condition]:
    """Before a run: Successful goes False, Running is True/Running/"Running reconciliation"."""
    conditions = _with_status(conditions, SUCCESSFUL, "False")
    return set_condition(
        conditions, new_condition(RUNNING, "True", reason=REASON_RUNNING, message=MESSAGE_RUNNING, now=now)
    )


def done_conditions(
    conditions: list[Condition],
    *,
    succeeded: bool,
    ansible_result: AnsibleResult | None,
    failure_message: str,
    now: str,
) -> list[Condition]:
    """After a run, operator-sdk's markDone."""
    if succeeded:
        conditions = set_condition(
            conditions,
            new_condition(
                RUNNING,
                "True",
                reason=REASON_SUCCESSFUL,
                message=MESSAGE_AWAITING,
                now=now,
                ansible_result=ansible_result,
            ),
        )
        conditions = set_condition(
            conditions,
            new_condition(SUCCESSFUL, "True", reason=REASON_SUCCESSFUL, message=MESSAGE_SUCCEEDED, now=now),
        )
        return set_condition(conditions, new_condition(FAILURE, "False", reason="", message="", now=now))
    conditions = _with_status(conditions, RUNNING, "False")
    conditions = set_condition(
        conditions,
        new_condition(
            FAILURE, "True", reason=REASON_FAILED, message=failure_message, now=now, ansible_result=ansible_result
        ),
    )
    return set_condition(conditions, new_condition(SUCCESSFUL, "False", reason="", message="", now=now))


def error_conditions(conditions: list[Condition], *, message: str, now: str) -> list[Condition]:
    """A reconcile that could not even start ansible (bad annotation, API trouble): operator-sdk's markError."""
    conditions = _with_status(conditions, RUNNING, "False")
    conditions = _with_status(conditions, SUCCESSFUL, "False")
    return set_condition(conditions, new_condition(FAILURE, "True", reason=REASON_FAILED, message=message, now=now))


def ansible_result(counts: Mapping[str, int], completion: str) -> AnsibleResult:
    """ansibleResult from one host's playbook_on_stats counts."""
    return AnsibleResult(
        ok=int(counts.get("ok", 0)),
        changed=int(counts.get("changed", 0)),
        skipped=int(counts.get("skipped", 0)),
        failures=int(counts.get("failures", 0)),
        completion=completion,
    )


def status_patch(
    current_status: Mapping[str, Any], conditions: list[Condition], *, observed_generation: int | None
) -> dict[str, Any] | None:
    """The ``status`` part of a merge patch, or None when it would change nothing."""
    patch: dict[str, Any] = {}
    if conditions != conditions_of(current_status):
        patch["conditions"] = conditions
    if observed_generation and current_status.get("observedGeneration") != observed_generation:
        patch["observedGeneration"] = observed_generation
    return patch or None


def failure_event(
    obj: KubeObject, *, reason: str, message: str, now: str, component: str, instance: str, name_suffix: str
) -> Event:
    """A Warning Event about ``obj`` (core/v1, so ``kubectl describe`` shows it)."""
    meta = metadata(obj)
    namespace = str(meta.get("namespace") or "default")
    involved = ObjectReference(
        apiVersion=str(obj.get("apiVersion") or ""),
        kind=str(obj.get("kind") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resourceVersion=str(meta.get("resourceVersion") or ""),
    )
    if meta.get("namespace"):
        involved["namespace"] = namespace
    return Event(
        apiVersion="v1",
        kind="Event",
        metadata={"name": f"{meta.get('name')}.{name_suffix}", "namespace": namespace},
        involvedObject=involved,
        reason=reason,
        message=message[:1024],
        type="Warning",
        count=1,
        firstTimestamp=now,
        lastTimestamp=now,
        source={"component": component},
        reportingComponent=component,
        reportingInstance=instance,
    )
