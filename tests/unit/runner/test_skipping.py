"""The skip rule: when a reconcile may start no ansible at all.

Covered: what the inputs fingerprint includes (uid, generation, spec and other
top-level fields, labels, annotations, deletion, finalizer-ness, the watch's
inputs) and what it ignores (status, resourceVersion, managedFields,
finalizers), and every branch of ``decide``: first reconcile, forced by a
dependent, inputs changed, failed (retry due or scheduled), period elapsed,
skip.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cluster_discovery_operator.skipping import Decision, RunRecord, decide, fingerprint

BASE: dict[str, Any] = {
    "apiVersion": "x.io/v1",
    "kind": "Widget",
    "metadata": {
        "name": "w",
        "namespace": "ns",
        "uid": "u1",
        "generation": 3,
        "resourceVersion": "100",
        "labels": {"tier": "gold"},
        "annotations": {"note": "a"},
        "finalizers": ["x.io/f"],
        "managedFields": [{"manager": "kubectl"}],
    },
    "spec": {"size": 1},
    "status": {"conditions": [{"type": "Running", "status": "True"}]},
}
WATCH = {"role": "widget", "vars": {}}


def _fp(obj: dict[str, Any], *, finalizer_run: bool = False, watch: dict[str, Any] | None = None) -> str:
    return fingerprint(obj, finalizer_run=finalizer_run, watch_inputs=watch or WATCH)


def _changed(path: list[str], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    target = obj
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(["status", "conditions"], [], id="status"),
        pytest.param(["metadata", "resourceVersion"], "101", id="resourceVersion"),
        pytest.param(["metadata", "managedFields"], [], id="managedFields"),
        pytest.param(["metadata", "finalizers"], [], id="finalizers"),
        pytest.param(["metadata", "creationTimestamp"], "2026-01-01T00:00:00Z", id="other-metadata"),
    ],
)
def test_bookkeeping_changes_keep_the_fingerprint(path: list[str], value: Any) -> None:
    """Writes by the runner, the role's status and the API server's bookkeeping are not inputs."""
    assert _fp(_changed(path, value)) == _fp(BASE)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(["spec", "size"], 2, id="spec"),
        pytest.param(["metadata", "generation"], 4, id="generation"),
        pytest.param(["metadata", "labels"], {"tier": "silver"}, id="labels"),
        pytest.param(["metadata", "annotations"], {"note": "b"}, id="annotations"),
        pytest.param(["metadata", "uid"], "u2", id="recreated"),
        pytest.param(["metadata", "deletionTimestamp"], "2026-01-01T00:00:00Z", id="deleted"),
        pytest.param(["data"], {"k": "v"}, id="other-top-level-field"),
    ],
)
def test_input_changes_change_the_fingerprint(path: list[str], value: Any) -> None:
    assert _fp(_changed(path, value)) != _fp(BASE)


def test_finalizer_runs_and_watch_inputs_are_inputs() -> None:
    assert _fp(BASE, finalizer_run=True) != _fp(BASE)
    assert _fp(BASE, watch={"role": "widget", "vars": {"x": 1}}) != _fp(BASE)


def _record(**kwargs: Any) -> RunRecord:
    values: dict[str, Any] = {"fingerprint": "fp", "succeeded": True, "finished_at": 100.0, "period": 0.0}
    values.update(kwargs)
    return RunRecord(**values)


@pytest.mark.parametrize(
    ("record", "current", "forced", "now", "decision", "why"),
    [
        pytest.param(None, "fp", None, 100.0, Decision.RUN, "first reconcile", id="first"),
        pytest.param(_record(), "fp", "dependent ConfigMap x changed", 101.0, Decision.RUN, "dependent", id="forced"),
        pytest.param(_record(), "other", None, 101.0, Decision.RUN, "inputs changed", id="changed"),
        pytest.param(_record(), "fp", None, 1e9, Decision.SKIP, "unchanged", id="unchanged-no-period"),
        pytest.param(_record(period=30.0), "fp", None, 129.0, Decision.SKIP, "unchanged", id="period-not-elapsed"),
        pytest.param(_record(period=30.0), "fp", None, 130.0, Decision.RUN, "period elapsed", id="period-elapsed"),
        pytest.param(
            _record(succeeded=False, retry_at=110.0),
            "fp",
            None,
            105.0,
            Decision.WAIT,
            "retry is scheduled",
            id="failed-in-backoff",
        ),
        pytest.param(
            _record(succeeded=False, retry_at=110.0), "fp", None, 110.0, Decision.RUN, "retrying", id="failed-retry-due"
        ),
        pytest.param(
            _record(succeeded=False, retry_at=110.0),
            "other",
            None,
            105.0,
            Decision.RUN,
            "inputs changed",
            id="failed-but-fixed",
        ),
    ],
)
def test_decide(
    record: RunRecord | None, current: str, forced: str | None, now: float, decision: Decision, why: str
) -> None:
    verdict = decide(record, current_fingerprint=current, forced=forced, now=now)
    assert verdict.decision is decision
    assert why in verdict.why


def test_a_failed_last_run_is_never_skipped() -> None:
    """Whatever the time, a failed record gives RUN or WAIT (its retry is scheduled), never SKIP."""
    record = _record(succeeded=False, retry_at=200.0)
    for now in (100.0, 150.0, 199.9, 200.0, 1e9):
        assert decide(record, current_fingerprint="fp", forced=None, now=now).decision is not Decision.SKIP
