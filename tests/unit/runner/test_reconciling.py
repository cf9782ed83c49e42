"""The controller's reconcile, step by step, against an in-memory API and a scripted ansible.

Covered: the first reconcile (finalizer, Running, run with the contract's
extra vars, Successful with ansibleResult), no ansible for an unchanged object
(our own status writes included), a spec change running again, a failure
(Failure condition with the task's message, a Warning Event counted on repeat,
backoff, no early retry on a status-only change, retry once due), deletion
(finalizer run with its vars, finalizer removed, object gone; a failing
finalizer keeps the object), deleted objects without our finalizer, a bad
reconcile-period annotation, requeue_after, role metrics, dependents (a
foreign change forces a run, the run's own writes do not) and ready objects
sharing one process only when their contract keys match. Real ansible and a
real API server are in tests/integration/runner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cluster_discovery_operator.bodies import ObjectKey
from cluster_discovery_operator.dependents import DependentRouter
from cluster_discovery_operator.metrics import OperatorMetrics
from cluster_discovery_operator.object_state import DependentTrigger
from cluster_discovery_operator.reconciling import Controller
from cluster_discovery_operator.running import HostOutcome, ProducedObject, RunItem, RunOutcome
from cluster_discovery_operator.settings import QueueingSettings, RunningSettings, Settings
from cluster_discovery_operator.watches import Finalizer, GroupVersionKind, Watch

from tests.unit.runner.kube_fakes import WIDGETS, FakeKube

FINALIZER = "test.example.com/finalizer"
WATCH = Watch(
    gvk=GroupVersionKind("test.example.com", "v1", "Widget"),
    role="widget",
    vars={"flavour": "plain"},
    finalizer=Finalizer(name=FINALIZER, vars={"state": "absent"}),
)

Behaviour = Callable[[RunItem], HostOutcome]


def succeed(item: RunItem) -> HostOutcome:
    return HostOutcome(counts={"ok": 2, "changed": 1})


class FakeRunner:
    """Records every ansible 'process' and answers per object with ``behaviour``."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = succeed
        self.runs: list[list[RunItem]] = []

    def run(self, watch: Watch, items: list[RunItem], *, batch_dir: Path, cancel: threading.Event) -> RunOutcome:
        self.runs.append(list(items))
        return RunOutcome(
            ident=f"run-{len(self.runs)}",
            status="successful",
            rc=0,
            stats_received=True,
            completion="2026-01-01T00:00:00+00:00",
            artifacts_dir=batch_dir,
            duration=0.01,
            hosts={},
            by_reconcile_id={i.reconcile_id: self.behaviour(i) for i in items},
        )

    @property
    def objects_run(self) -> list[str]:
        return [i.obj["metadata"]["name"] for run in self.runs for i in run]


class Harness:
    def __init__(self, tmp_path: Path, watch: Watch = WATCH, **queueing: Any) -> None:
        self.kube = FakeKube()
        self.runner = FakeRunner()
        self.metrics = OperatorMetrics()
        settings = Settings(
            queueing=QueueingSettings(max_concurrent_reconciles=1, backoff_base=0.05, **queueing),
            running=RunningSettings(artifacts_dir=tmp_path),
        )
        router = DependentRouter(self.kube, settings, self.metrics, "test")  # type: ignore[arg-type]
        self.controller = Controller(
            watch=watch,
            resource=WIDGETS,
            kube=self.kube,
            runner=self.runner,  # type: ignore[arg-type]
            metrics=self.metrics,
            settings=settings,
            router=router,
        )
        router.register(self.controller)
        self.router = router
        self.informer = self.controller.informers[""]

    def close(self) -> None:
        """Stop the dependent watches the runs started (threads that outlive the test otherwise)."""
        self.router.stop()

    def sync(self) -> None:
        """What the watch would deliver: the cache catches up with the API (and keys are queued)."""
        self.informer.relist()

    def drain(self) -> None:
        """Sync and reconcile until nothing is ready."""
        for _ in range(50):
            self.sync()
            if not self.controller.process_next(0, timeout=0):
                return
        raise AssertionError("the queue never drained")

    def widget(self, name: str = "w", **spec: Any) -> dict[str, Any]:
        return self.kube.put(WIDGETS, {"metadata": {"name": name, "namespace": "ns"}, "spec": spec})

    def stored(self, name: str = "w") -> dict[str, Any] | None:
        return self.kube.objects.get(("widgets", "ns", name))

    def conditions(self, name: str = "w") -> dict[str, dict[str, Any]]:
        stored = self.stored(name)
        assert stored is not None
        return {c["type"]: c for c in stored.get("status", {}).get("conditions", [])}

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Harnesses made with any watch or queueing settings, each closed after the test."""
    made: list[Harness] = []

    def make(watch: Watch = WATCH, **queueing: Any) -> Harness:
        made.append(Harness(tmp_path, watch, **queueing))
        return made[-1]

    yield make
    for each in made:
        each.close()


@pytest.fixture
def h(harness: Callable[..., Harness]) -> Harness:
    return harness()


def test_first_reconcile_adds_finalizer_marks_running_and_succeeds(h: Harness) -> None:
    h.widget(sizeCount=3)
    h.drain()
    (run,) = h.runner.runs
    (item,) = run
    assert item.parameters["size_count"] == 3
    assert item.parameters["flavour"] == "plain"
    assert "state" not in item.parameters, "finalizer vars only on finalizer runs"
    assert item.parameters["ansible_operator_meta"] == {"name": "w", "namespace": "ns"}
    assert FINALIZER in item.obj["metadata"]["finalizers"], "the finalizer is added before the first run"
    assert item.obj["status"]["conditions"][0]["type"] == "Running", "the role sees the Running condition"
    stored = h.stored()
    assert stored is not None and stored["metadata"]["finalizers"] == [FINALIZER]
    conditions = h.conditions()
    assert conditions["Successful"]["status"] == "True"
    assert conditions["Running"]["message"] == "Awaiting next reconciliation"
    assert conditions["Running"]["ansibleResult"]["changed"] == 1
    assert stored["status"]["observedGeneration"] == 1
    assert (
        h.metric(
            "cluster_discovery_operator_reconciles_total", group="test.example.com", kind="Widget", result="succeeded"
        )
        == 1
    )


def test_an_unchanged_object_starts_no_ansible(h: Harness) -> None:
    """Our own finalizer and status writes come back as events; none of them runs the role again."""
    h.widget(sizeCount=3)
    h.drain()
    for _ in range(3):
        h.controller.queue.add(ObjectKey("ns/w"))
        h.drain()
    assert len(h.runner.runs) == 1
    assert h.metric("cluster_discovery_operator_runs_skipped_total", group="test.example.com", kind="Widget") >= 3


def test_a_spec_change_runs_again(h: Harness) -> None:
    h.widget(sizeCount=3)
    h.drain()
    h.widget(sizeCount=4)
    h.drain()
    assert [run[0].parameters["size_count"] for run in h.runner.runs] == [3, 4]
    stored = h.stored()
    assert stored is not None and stored["status"]["observedGeneration"] == 2


def test_a_label_change_runs_again_but_a_status_change_does_not(h: Harness) -> None:
    h.widget(sizeCount=1)
    h.drain()
    stored = h.stored()
    assert stored is not None
    stored["status"]["peers"] = 5
    stored["metadata"]["resourceVersion"] = "9999"
    h.drain()
    assert len(h.runner.runs) == 1
    stored["metadata"]["labels"] = {"tier": "gold"}
    stored["metadata"]["resourceVersion"] = "10000"
    h.drain()
    assert len(h.runner.runs) == 2


def test_a_failure_reports_the_task_message_emits_an_event_and_backs_off(h: Harness) -> None:
    h.runner.behaviour = lambda item: HostOutcome(
        failed=True, message="widget w refused: no room", counts={"ok": 1, "failures": 1}
    )
    h.widget(sizeCount=1)
    h.drain()
    conditions = h.conditions()
    assert conditions["Failure"]["status"] == "True"
    assert conditions["Failure"]["message"] == "widget w refused: no room"
    assert conditions["Failure"]["ansibleResult"]["failures"] == 1
    assert conditions["Successful"]["status"] == "False"
    (event,) = h.kube.events
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "ReconcileFailed",
        "widget w refused: no room",
    )
    assert h.controller.queue.delayed == 1, "the retry waits for its backoff"
    assert h.controller.queue.num_requeues(ObjectKey("ns/w")) == 1
    h.controller.queue.add(ObjectKey("ns/w"))
    h.drain()
    assert len(h.runner.runs) == 1, "an event that changes no input does not cut the backoff short"
    time.sleep(0.06)
    h.drain()
    assert len(h.runner.runs) == 2, "once due, the failed object is retried (never skipped)"
    assert h.kube.events[0]["count"] == 2, "the same failure counts on the same Event"
    assert h.controller.queue.num_requeues(ObjectKey("ns/w")) == 2


def test_a_fixed_spec_runs_at_once_even_in_backoff(h: Harness) -> None:
    h.runner.behaviour = lambda item: HostOutcome(
        failed=item.parameters.get("size_count") == 0, message="size must not be 0", counts={}
    )
    h.widget(sizeCount=0)
    h.drain()
    h.widget(sizeCount=2)
    h.drain()
    assert len(h.runner.runs) == 2
    assert h.conditions()["Successful"]["status"] == "True"
    assert h.controller.queue.num_requeues(ObjectKey("ns/w")) == 0, "success resets the backoff"


def test_deletion_runs_the_finalizer_with_its_vars_then_lets_the_object_go(h: Harness) -> None:
    h.widget(sizeCount=1)
    h.drain()
    h.kube.delete(WIDGETS, "ns", "w")
    h.drain()
    final = h.runner.runs[-1][0]
    assert final.finalizer_run
    assert final.parameters["state"] == "absent"
    assert h.stored() is None, "finalizer removed, object gone"


def test_a_failing_finalizer_keeps_the_object_and_says_why(h: Harness) -> None:
    h.widget(sizeCount=1)
    h.drain()
    h.runner.behaviour = lambda item: HostOutcome(failed=item.finalizer_run, message="cannot clean up", counts={})
    h.kube.delete(WIDGETS, "ns", "w")
    h.drain()
    stored = h.stored()
    assert stored is not None and stored["metadata"]["finalizers"] == [FINALIZER]
    assert h.conditions()["Failure"]["message"] == "cannot clean up"
    assert h.kube.events[-1]["reason"] == "FinalizerFailed"


def test_an_object_deleted_without_our_finalizer_is_left_alone(harness: Callable[..., Harness]) -> None:
    h = harness(watch=replace(WATCH, finalizer=None))
    h.kube.put(
        WIDGETS,
        {
            "metadata": {
                "name": "w",
                "namespace": "ns",
                "finalizers": ["other.io/f"],
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {},
        },
    )
    h.drain()
    assert h.runner.runs == []


def test_a_bad_reconcile_period_annotation_fails_without_running(h: Harness) -> None:
    h.kube.put(
        WIDGETS,
        {
            "metadata": {
                "name": "w",
                "namespace": "ns",
                "annotations": {"ansible.sdk.operatorframework.io/reconcile-period": "soon"},
            },
            "spec": {},
        },
    )
    h.drain()
    assert h.runner.runs == []
    assert "Unable to parse reconcile period annotation" in h.conditions()["Failure"]["message"]


def annotated_widget(h: Harness, spec: dict[str, Any] | None = None, **annotations: str) -> None:
    """A widget with operator-sdk's annotations: ``reconcile_period=...`` is ``.../reconcile-period``."""
    prefix = "ansible.sdk.operatorframework.io/"
    h.kube.put(
        WIDGETS,
        {
            "metadata": {
                "name": "w",
                "namespace": "ns",
                "annotations": {prefix + key.replace("_", "-"): value for key, value in annotations.items()},
            },
            "spec": spec or {},
        },
    )


def test_a_reconcile_period_annotation_is_no_shorter_than_the_operators_minimum(
    harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever may edit an object may annotate it: 1ms had the shared operator run that object back to back."""
    # A second of floor: a loaded CI machine may pause the test for a fraction of one between two drains.
    h = harness(min_reconcile_period=1.0)
    annotated_widget(h, reconcile_period="1ms")
    h.drain()
    assert len(h.runner.runs) == 1
    time.sleep(0.05)
    h.drain()
    assert len(h.runner.runs) == 1, "the object ran again before the operator's minimum period"
    assert "--min-reconcile-period" in caplog.text
    time.sleep(1.0)
    h.drain()
    assert len(h.runner.runs) == 2, "the minimum period elapsed: the object runs again"
    assert caplog.text.count("--min-reconcile-period") == 1, "the same decision was logged again"


def test_a_reconcile_period_annotation_is_taken_as_written_without_a_minimum(
    harness: Callable[..., Harness],
) -> None:
    h = harness(min_reconcile_period=0.0)
    annotated_widget(h, reconcile_period="1ms")
    h.drain()
    time.sleep(0.01)
    h.drain()
    assert len(h.runner.runs) >= 2, "operator-sdk's behaviour, when the operator's admin asks for it"


@pytest.mark.parametrize(("asked", "kept"), [("0", 20), ("1000000", 20), ("3", 3), ("20", 20), ("many", 20)])
def test_a_max_runner_artifacts_annotation_keeps_no_more_than_the_watch_says(
    h: Harness, caplog: pytest.LogCaptureFixture, asked: str, kept: int
) -> None:
    """0 would keep every run's artifacts (about half a megabyte each for the collection's roles)."""
    assert WATCH.max_runner_artifacts == 20
    annotated_widget(h, max_runner_artifacts=asked)
    h.drain()
    ((item,),) = h.runner.runs
    assert item.max_artifacts == kept
    annotated_widget(h, {"sizeCount": 2}, max_runner_artifacts=asked)  # a second run, the same annotation
    h.drain()
    assert [run[0].max_artifacts for run in h.runner.runs] == [kept, kept]
    said = caplog.text.count("keeping the watch's number")
    assert said == (1 if asked in ("0", "1000000") else 0), "a bounded annotation is said once"


@pytest.mark.parametrize("annotation", ["verbosity", "max_runner_artifacts"])
@pytest.mark.parametrize("junk", ["many", "-2"])
def test_an_annotation_that_is_no_count_is_said_once_and_again_after_it_was_taken_away(
    h: Harness, caplog: pytest.LogCaptureFixture, annotation: str, junk: str
) -> None:
    """Every event of the object reconciles it: a warning at each would drown the operator's log."""
    for description in ("a", "b"):  # two runs with the same annotation
        annotated_widget(h, {"sizeCount": description}, **{annotation: junk})
        h.drain()
    assert caplog.text.count("ignoring") == 1, caplog.text
    annotated_widget(h, {"sizeCount": "c"})  # taken away, then written again
    h.drain()
    annotated_widget(h, {"sizeCount": "d"}, **{annotation: junk})
    h.drain()
    assert caplog.text.count("ignoring") == 2, caplog.text
    assert len(h.runner.runs) == 4


def test_a_bounded_annotation_is_said_again_after_it_was_taken_away(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the object's owner removed it, writing it again is news to whoever reads the operator's log."""
    for spec, written in (
        ({"sizeCount": 1}, {"max_runner_artifacts": "0"}),
        ({"sizeCount": 2}, {}),
        ({"sizeCount": 3}, {"max_runner_artifacts": "0"}),
    ):
        annotated_widget(h, spec, **written)
        h.drain()
    assert caplog.text.count("keeping the watch's number") == 2, caplog.text


def test_requeue_after_and_the_period_annotation_schedule_the_next_run(h: Harness) -> None:
    h.runner.behaviour = lambda item: HostOutcome(counts={}, requeue_after=0.05)
    h.widget(sizeCount=1)
    h.drain()
    assert h.controller.queue.delayed == 1
    time.sleep(0.06)
    h.drain()
    assert len(h.runner.runs) == 2, "the period elapsed: the object runs although nothing changed"


def test_a_periodic_run_that_succeeds_again_writes_no_status_and_one_that_fails_does(h: Harness) -> None:
    """Issue 20: a resync that succeeds again would only restamp the same conditions (two writes per object per
    period); a resync that fails is news and is written."""
    h.runner.behaviour = lambda item: HostOutcome(counts={"ok": 3}, requeue_after=0.05)
    h.widget(sizeCount=1)
    h.drain()
    first = h.conditions()
    assert first["Successful"]["status"] == "True"
    status_writes = sum(1 for call, _ in h.kube.calls if call == "patch-status")
    assert status_writes == 2, "the first run marks Running, then its outcome"

    time.sleep(0.06)
    h.drain()
    assert len(h.runner.runs) == 2
    assert sum(1 for call, _ in h.kube.calls if call == "patch-status") == status_writes, "the resync wrote status"
    assert h.conditions() == first

    h.runner.behaviour = lambda item: HostOutcome(failed=True, message="the node is gone")
    time.sleep(0.06)
    h.drain()
    assert h.conditions()["Failure"]["message"] == "the node is gone"


def test_the_period_still_comes_when_an_older_deadline_fires_first_and_is_skipped(h: Harness) -> None:
    """A change shortly after a run leaves that run's earlier deadline behind; it must not swallow the new period."""
    h.runner.behaviour = lambda item: HostOutcome(counts={}, requeue_after=0.3)
    h.widget(sizeCount=1)
    h.drain()
    time.sleep(0.1)
    h.widget(sizeCount=2)
    h.drain()
    assert len(h.runner.runs) == 2
    time.sleep(0.25)  # the first run's deadline (if left) is due, the second run's period is not
    h.drain()
    assert len(h.runner.runs) == 2, "nothing changed and the period since the last run has not elapsed"
    time.sleep(0.1)
    h.drain()
    assert len(h.runner.runs) == 3, "the second run's period elapsed: the object runs again"


def test_role_metrics_are_applied(h: Harness) -> None:
    metric = {"name": "widget_gauge", "description": "d", "labels": {"widget": "w"}, "gauge": {"set": 0.0}}
    h.runner.behaviour = lambda item: HostOutcome(counts={}, metrics=[metric])
    h.widget()
    h.drain()
    assert h.metrics.registry.get_sample_value("widget_gauge", {"widget": "w"}) == 0.0


def _produced(uid: str, rv: str, owner: str) -> ProducedObject:
    return ProducedObject(
        api_version="v1",
        kind="ConfigMap",
        namespace="ns",
        name="w-data",
        uid=uid,
        resource_version=rv,
        owner_uids=frozenset({owner}),
        owner_annotation="",
        owner_type_annotation="",
    )


def test_a_dependent_changed_by_someone_else_forces_a_run_but_our_own_write_does_not(h: Harness) -> None:
    h.runner.behaviour = lambda item: HostOutcome(counts={}, produced={"cm": _produced("cm", "55", "uid-w")})
    h.widget()
    h.drain()
    owner = ObjectKey("ns/w")
    h.controller.dependent_changed(owner, DependentTrigger("ConfigMap", "w-data", "cm", "55", "MODIFIED"))
    h.drain()
    assert len(h.runner.runs) == 1, "the event of the run's own write is ignored"
    h.controller.dependent_changed(owner, DependentTrigger("ConfigMap", "w-data", "cm", "56", "MODIFIED"))
    h.drain()
    assert len(h.runner.runs) == 2, "someone else's change forces a run although the widget is unchanged"


def test_ready_objects_share_one_process_when_their_contract_keys_match(harness: Callable[..., Harness]) -> None:
    h = harness(max_batch_size=10)
    for name in ("a", "b", "c"):
        h.widget(name, sizeCount=1)
    h.widget("d", sizeCount=1, message="different keys")
    h.drain()
    sizes = sorted(len(run) for run in h.runner.runs)
    assert sizes == [1, 3]
    assert sorted(h.runner.objects_run) == ["a", "b", "c", "d"]
    for name in "abcd":
        assert h.conditions(name)["Successful"]["status"] == "True"
