"""Reconciling: one controller per watched kind.

A :class:`Controller` owns, for one entry of watches.yaml, the informers of its
kind (one per watched namespace, or one for all), a keyed :class:`WorkQueue`
and ``max_concurrent_reconciles`` worker threads. A worker's reconcile follows
operator-sdk's ``reconcile.go`` step by step, with the cost edge in front:

1. read the object from the watch cache; gone -> forget it;
2. deleted without our finalizer -> skip (operator-sdk's rule); a malformed
   ``reconcile-period`` annotation -> Failure condition, no run. Annotations are
   written by whoever may edit the object, so they are bounded by what the
   operator's admin set: a ``reconcile-period`` no shorter than
   ``--min-reconcile-period``, a ``max-runner-artifacts`` no larger than the
   watch's ``maxRunnerArtifacts`` (operator-sdk takes both as written);
3. **the skip rule** (``skipping``): unchanged inputs since a successful run,
   no dependent change, period not elapsed -> done, no ansible;
4. add the finalizer if the watch has one (before the first run);
5. mark Running (status subresource, conditions only);
6. run ansible (``running``); a worker whose object needs a run first takes the
   other objects of the kind that are ready now (up to ``--max-batch-size``,
   waiting ``batch_window`` at most) so they share one ansible-playbook process;
7. per object: apply the role's metrics, watch the kinds of the dependents it
   created, remove the finalizer after a successful finalizer run, mark
   Successful or Failure (with the failed task's message), emit a Warning Event
   on failure, and requeue: after the period on success, after the backoff on
   failure.

Status writes re-read the object first (operator-sdk's APIReader rule) or carry
the resourceVersion they were computed from, and retry on 409, so a role's own
status fields and conditions are never overwritten (``object_writes``).

**Dependents.** A change to an object a run created or updated requeues its
owner and forces a run (``dependents`` watches those kinds and routes the
change here), unless the change is the run's own write: each run's results
give the resourceVersions it wrote, and events carrying one of those are
ignored (so one change costs one run, where operator-sdk runs twice). Roles
must therefore set ``ownerReferences`` themselves (from
``_<group>_<kind>.metadata.uid``), as the collection's roles do. What the
controller remembers of each object (last run, why a run is forced, the
writes of the last run, the last failure Event) is one ``ObjectState``
(``object_state``).

**Shutdown.** ``stop`` makes the queue hand out nothing more and stops the
informers; running reconciles get ``grace`` seconds to finish; after that their
ansible is cancelled and they are left as they are for the next process (which
reconciles every object once anyway).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from .bodies import (
    KubeObject,
    ObjectKey,
    annotations_of,
    key_of,
    name_of,
    namespace_of,
    object_key,
    split_key,
    uid_of,
)
from .dependents import DependentRouter
from .durations import DurationError, parse_duration
from .finalizers import adding_patch, is_finalizer_run, is_terminated_without_us, needs_adding
from .kube import KubeClient, KubeError, NotFoundError, PermanentKubeError, Resource
from .logs import fields
from .metrics import MetricError, OperatorMetrics
from .object_state import DependentTrigger, ObjectStates
from .object_writes import ObjectWrites
from .queueing import WorkQueue
from .running import (
    AnsibleRunner,
    HostOutcome,
    ProducedObject,
    RunItem,
    RunOutcome,
    group_items,
    make_parameters,
)
from .settings import Settings
from .skipping import Decision, RunRecord, decide, fingerprint
from .status import (
    ansible_result,
    done_conditions,
    error_conditions,
    now_rfc3339,
    running_conditions,
)
from .watches import GroupVersionKind, Watch
from .watching import DELETED, Informer

log = logging.getLogger(__name__)

RECONCILE_PERIOD_ANNOTATION = "ansible.sdk.operatorframework.io/reconcile-period"
MAX_RUNNER_ARTIFACTS_ANNOTATION = "ansible.sdk.operatorframework.io/max-runner-artifacts"
VERBOSITY_ANNOTATION = "ansible.sdk.operatorframework.io/verbosity"
# Objects whose finalizer, Running and final status writes go out at once when several share a run.
_API_CONCURRENCY = 8
T = TypeVar("T")
R = TypeVar("R")


def _new_id() -> str:
    return secrets.token_hex(6)


@dataclass
class ReconcilePlan:
    """A reconcile that will start ansible."""

    key: ObjectKey
    obj: KubeObject
    finalizer_run: bool
    why: str
    period: float
    reconcile_id: str
    began: float
    resync: bool = False
    """Run for its period alone (skipping.Verdict.resync)."""


class Controller:
    """Informers, queue and workers for one watched kind."""

    def __init__(
        self,
        *,
        watch: Watch,
        resource: Resource,
        kube: KubeClient,
        runner: AnsibleRunner,
        metrics: OperatorMetrics,
        settings: Settings,
        router: DependentRouter,
    ) -> None:
        self.watch = watch
        self.resource = resource
        self.kube = kube
        self.runner = runner
        self.metrics = metrics
        self.settings = settings
        self.router = router
        self.gvk_label = str(watch.gvk)
        self.labels = {"group": watch.gvk.group, "kind": watch.gvk.kind}
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            settings.queueing, on_depth=lambda depth: self.metrics.queue_depth.labels(**self.labels).set(depth)
        )
        self.finalizer_name = watch.finalizer.name if watch.finalizer is not None else None
        self.watch_inputs: dict[str, Any] = {
            "role": watch.role,
            "playbook": watch.playbook,
            "vars": watch.vars,
            "finalizer": None
            if watch.finalizer is None
            else {
                "name": watch.finalizer.name,
                "role": watch.finalizer.role,
                "playbook": watch.finalizer.playbook,
                "vars": watch.finalizer.vars,
            },
            "snake": watch.snake_case_parameters,
            "unsafe": watch.mark_unsafe,
        }
        self.objects = ObjectStates()
        self.writes = ObjectWrites(kube, resource, self.objects, instance=router.identity)
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.informers: dict[str, Informer] = {}
        namespaces: Iterable[str | None] = (
            settings.namespaces if (resource.namespaced and settings.namespaces) else (None,)
        )
        for namespace in namespaces:
            self.informers[namespace or ""] = Informer(
                kube,
                resource,
                settings=settings.kube,
                namespace=namespace,
                label_selector=watch.selector.to_query() or None,
                handler=self.on_event,
                on_restart=lambda reason: self.metrics.watch_restarts.labels(**self.labels, reason=reason).inc(),
            )
        kind_dir = settings.running.artifacts_dir / (watch.gvk.group or "core") / watch.gvk.version / watch.gvk.kind
        self.kind_dir = kind_dir

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        for scope, informer in self.informers.items():
            thread = threading.Thread(
                target=informer.run,
                args=(self._stop,),
                name=f"watch-{self.watch.gvk.kind}-{scope or 'all'}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        for index in range(self.watch.max_concurrent_reconciles):
            thread = threading.Thread(
                target=self._worker, args=(index,), name=f"reconcile-{self.watch.gvk.kind}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info(
            "controller started",
            extra=fields(
                kind=self.watch.gvk.kind,
                group=self.watch.gvk.group,
                namespaces=list(self.informers) if any(self.informers) else "all",
                workers=self.watch.max_concurrent_reconciles,
                max_batch_size=self.settings.queueing.max_batch_size,
            ),
        )

    def synced(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers.values())

    def stop(self, grace: float) -> bool:
        """Stop taking work, give running reconciles ``grace`` seconds, then cancel them. True if all finished."""
        self.queue.shutdown()
        self._stop.set()
        for informer in self.informers.values():
            informer.stop()
        finished = self.queue.wait_idle(grace)
        if not finished:
            log.warning(
                "grace period over; cancelling running ansible, the next process will reconcile these objects",
                extra=fields(kind=self.watch.gvk.kind, running=self.objects.running()),
            )
            self.cancel.set()
            self.queue.wait_idle(10.0)
        for thread in self._threads:
            thread.join(timeout=2.0)
        return finished

    # -- events ----------------------------------------------------------------------

    def informer_for(self, key: ObjectKey) -> Informer | None:
        if "" in self.informers:
            return self.informers[""]
        namespace, _ = split_key(key)
        return self.informers.get(namespace)

    def cached(self, key: ObjectKey) -> KubeObject | None:
        informer = self.informer_for(key)
        return informer.get(key) if informer is not None else None

    def on_event(self, event_type: str, obj: KubeObject, old: KubeObject | None) -> None:
        key = key_of(obj)
        self.metrics.watched_objects.labels(**self.labels).set(sum(len(i) for i in self.informers.values()))
        if event_type == DELETED:
            self.queue.cancel_delayed(key)
            namespace, name = split_key(key)
            self.metrics.forget_object(self.watch.gvk.kind, namespace, name)
        self.queue.add(key)

    def dependent_changed(self, owner: ObjectKey, trigger: DependentTrigger) -> None:
        """A dependent of ``owner`` changed; requeue the owner unless its own run made the change."""
        if not self.objects.dependent_changed(owner, trigger):
            return
        namespace, name = split_key(owner)
        log.info(
            "dependent changed; requeueing its owner",
            extra=fields(
                kind=self.watch.gvk.kind,
                namespace=namespace or None,
                name=name,
                dependent_kind=trigger.kind,
                dependent=trigger.name,
                event=trigger.event_type,
            ),
        )
        self.queue.add(owner)

    # -- workers ---------------------------------------------------------------------

    def _worker(self, index: int) -> None:
        while self.process_next(index):
            pass

    def process_next(self, worker: int, timeout: float | None = None) -> bool:
        """Take one ready key (and, if it needs ansible, the others ready to share the process) and reconcile.

        Returns False when the queue is shut down (or ``timeout`` passed with nothing ready).
        """
        key = self.queue.get(timeout)
        if key is None:
            return False
        taken = [key]
        try:
            plans = self._prepare_all([key])
            if plans and self.settings.queueing.max_batch_size > 1:
                # A bounded call (tests, draining) takes what is ready now instead of waiting for more.
                window = self.settings.queueing.batch_window if timeout is None else 0.0
                more = self.queue.get_ready(self.settings.queueing.max_batch_size - 1, window)
                taken.extend(more)
                plans.extend(self._prepare_all(more))
            if plans:
                self._run_plans(plans, worker)
        except Exception:  # a bug in one reconcile must not kill the worker
            log.exception("reconcile crashed", extra=fields(kind=self.watch.gvk.kind, keys=taken))
            for failed in taken:
                self.queue.add_rate_limited(failed)
        finally:
            for done in taken:
                self.objects.abandon(done)  # a no-op for those whose run finished
            for done in taken:
                self.queue.done(done)
        return True

    def _prepare_all(self, keys: list[ObjectKey]) -> list[ReconcilePlan]:
        plans = []
        for key in keys:
            plan = self._prepare(key)
            if plan is not None:
                plans.append(plan)
        return plans

    def _period(self, key: ObjectKey, obj: KubeObject, context: Mapping[str, Any]) -> float:
        """The object's period: its reconcile-period annotation, no shorter than --min-reconcile-period, else the
        watch's. DurationError for an annotation that is no Go duration."""
        text = annotations_of(obj).get(RECONCILE_PERIOD_ANNOTATION)
        if text is None:
            self.objects.taken_as_written(key, RECONCILE_PERIOD_ANNOTATION)
            return self.watch.reconcile_period
        asked = parse_duration(text)
        shortest = self.settings.queueing.min_reconcile_period
        if 0 < asked < shortest:
            self._say_bounded(
                key,
                context,
                RECONCILE_PERIOD_ANNOTATION,
                text,
                shortest,
                "the reconcile-period annotation asks for a shorter period than --min-reconcile-period allows;"
                " using the shortest allowed",
            )
            return shortest
        self.objects.taken_as_written(key, RECONCILE_PERIOD_ANNOTATION)
        return asked

    def _say_bounded(
        self, key: ObjectKey, context: Mapping[str, Any], annotation: str, value: str, used: float, message: str
    ) -> None:
        """Log that an annotation was bounded to ``used``: once per object and value, not at every reconcile."""
        if self.objects.first_bounded(key, annotation, value):
            log.warning(message, extra=fields(**context, annotation=annotation, value=value, used=used))

    def _annotated_count(
        self,
        key: ObjectKey,
        annotations: Mapping[str, str],
        annotation: str,
        context: Mapping[str, Any],
        default: int,
        *,
        most: int | None = None,
    ) -> int:
        """A whole-number annotation as written; else ``default``, said once per object and value.

        With ``most``, the annotation may ask for 1 to ``most`` and no more (0 would mean no limit).
        """
        text = annotations.get(annotation)
        if text is None:
            self.objects.taken_as_written(key, annotation)
            return default
        try:
            value = int(text)
        except ValueError:
            self._say_bounded(key, context, annotation, text, default, "ignoring an annotation that is no whole number")
            return default
        if value < 0:
            self._say_bounded(key, context, annotation, text, default, "ignoring a negative annotation")
            return default
        if most is not None and not 0 < value <= most:
            self._say_bounded(
                key,
                context,
                annotation,
                text,
                default,
                "the annotation asks for more than the watch sets (0: no limit); keeping the watch's number",
            )
            return default
        self.objects.taken_as_written(key, annotation)
        return value

    def _prepare(self, key: ObjectKey) -> ReconcilePlan | None:
        began = time.monotonic()
        reconcile_id = _new_id()
        context = {
            "kind": self.watch.gvk.kind,
            "namespace": split_key(key)[0] or None,
            "name": split_key(key)[1],
            "reconcile_id": reconcile_id,
        }
        obj = self.cached(key)
        if obj is None:
            self.objects.forget(key)
            self.queue.forget(key)
            self.queue.cancel_delayed(key)
            log.debug("object is gone; nothing to do", extra=fields(**context))
            return None
        if is_terminated_without_us(obj, self.finalizer_name):
            log.info("resource is terminated, skipping reconciliation", extra=fields(**context))
            return None
        try:
            period = self._period(key, obj, context)
        except DurationError as exc:
            message = f"Unable to parse reconcile period annotation: {exc}"
            log.error(message, extra=fields(**context))
            self._mark_error(obj, message)
            self.queue.add_rate_limited(key)
            self._count("failed", began)
            return None
        finalizer_run = is_finalizer_run(obj, self.finalizer_name)
        current = fingerprint(obj, finalizer_run=finalizer_run, watch_inputs=self.watch_inputs)
        start = self.objects.before_run(key)
        record = start.record
        verdict = decide(record, current_fingerprint=current, forced=start.forced, now=time.monotonic())
        if verdict.decision is Decision.SKIP:
            assert record is not None  # a first reconcile always runs
            if record.period > 0:
                # Whatever woke this reconcile, the period's own run must still come.
                self.queue.add_after(key, max(record.period - (time.monotonic() - record.finished_at), 0.001))
            self.metrics.runs_skipped.labels(**self.labels).inc()
            self._count("skipped", began)
            log.debug("skipped: " + verdict.why, extra=fields(**context))
            return None
        if verdict.decision is Decision.WAIT:
            log.debug(verdict.why, extra=fields(**context))
            return None
        self.objects.start(key)
        return ReconcilePlan(
            key=key,
            obj=obj,
            finalizer_run=finalizer_run,
            why=verdict.why,
            period=period,
            reconcile_id=reconcile_id,
            began=began,
            resync=verdict.resync,
        )

    def _count(self, result: str, began: float) -> None:
        self.metrics.reconciles.labels(**self.labels, result=result).inc()
        self.metrics.reconcile_duration.labels(**self.labels, result=result).observe(time.monotonic() - began)

    # -- before the run ------------------------------------------------------------------

    def _start_plan(self, plan: ReconcilePlan) -> RunItem | None:
        """Finalizer, Running condition, parameters; None when the object went away or could not be prepared."""
        context = self._context(plan)
        obj = plan.obj
        namespace, name = namespace_of(obj), name_of(obj)
        try:
            if self.finalizer_name and needs_adding(obj, self.finalizer_name):
                obj = self.kube.patch(
                    self.resource,
                    namespace=namespace,
                    name=name,
                    body=adding_patch(obj, self.finalizer_name),
                    what="add finalizer to",
                )
                log.info("added finalizer", extra=fields(**context, finalizer=self.finalizer_name))
            # A resync's Running mark would be undone by its own end a few seconds later: two writes that tell
            # nobody anything. Without it, a resync that succeeds again leaves the conditions as they are (operator-
            # sdk's SetCondition keeps a condition whose status and reason stay), so nothing is written; one that
            # fails is written.
            if self.watch.manage_status and self.resource.has_status and not plan.resync:
                obj = self.writes.conditions(
                    plan.key, lambda conditions: running_conditions(conditions, now=now_rfc3339()), obj=obj
                )
        except NotFoundError:
            self._finish_quietly(plan, "object deleted before its run started")
            return None
        except KubeError as exc:
            log.warning("could not prepare the run; retrying later", extra=fields(**context, error=str(exc)))
            self._finish_quietly(plan, None)
            self.queue.add_rate_limited(plan.key)
            return None
        plan.obj = obj
        annotations = annotations_of(obj)
        verbosity = self._annotated_count(
            plan.key, annotations, VERBOSITY_ANNOTATION, context, self.watch.ansible_verbosity
        )
        # Whoever may edit the object may annotate it; its runs' artifacts fill the operator's disk (0 keeps them
        # all). The annotation may keep fewer than the watch says, never more.
        most = self.watch.max_runner_artifacts
        artifacts = self._annotated_count(
            plan.key, annotations, MAX_RUNNER_ARTIFACTS_ANNOTATION, context, most, most=most
        )
        object_dir = self.kind_dir / namespace / name if namespace else self.kind_dir / name
        return RunItem(
            obj=obj,
            parameters=make_parameters(obj, watch=self.watch, finalizer_run=plan.finalizer_run),
            finalizer_run=plan.finalizer_run,
            verbosity=verbosity,
            max_artifacts=artifacts,
            private_dir=object_dir,
            reconcile_id=plan.reconcile_id,
        )

    def _finish_quietly(self, plan: ReconcilePlan, why: str | None) -> None:
        self.objects.abandon(plan.key)
        if why:
            log.info(why, extra=fields(**self._context(plan)))

    def _context(self, plan: ReconcilePlan) -> dict[str, Any]:
        namespace, name = split_key(plan.key)
        return {
            "kind": self.watch.gvk.kind,
            "namespace": namespace or None,
            "name": name,
            "reconcile_id": plan.reconcile_id,
        }

    # -- the run --------------------------------------------------------------------------

    def _each(self, function: Callable[[T], R], values: list[T]) -> list[R]:
        """``function`` over ``values``; several at once when there are several (API round trips overlap)."""
        if len(values) <= 1:
            return [function(value) for value in values]
        with ThreadPoolExecutor(max_workers=min(len(values), _API_CONCURRENCY)) as pool:
            return list(pool.map(function, values))

    def _run_plans(self, plans: list[ReconcilePlan], worker: int) -> None:
        for plan in plans:
            log.info("reconciling", extra=fields(**self._context(plan), why=plan.why, finalizer_run=plan.finalizer_run))
        prepared = self._each(self._start_plan, plans)
        started = [(plan, item) for plan, item in zip(plans, prepared, strict=True) if item is not None]
        by_id = {item.reconcile_id: plan for plan, item in started}
        groups = group_items(
            [item for _, item in started],
            lambda item: (item.finalizer_run, tuple(sorted(item.parameters)), item.verbosity),
        )
        for group in groups:
            batch_dir = self.kind_dir / "_batch" / f"worker-{worker}"
            try:
                outcome = self.runner.run(self.watch, group, batch_dir=batch_dir, cancel=self.cancel)
            except Exception as exc:  # ansible-runner can raise on broken input; report it on the objects
                log.exception("ansible-runner failed to start", extra=fields(kind=self.watch.gvk.kind))
                message = f"Unable to run reconciliation: {type(exc).__name__}: {exc}"
                outcome = RunOutcome(
                    ident="",
                    status="error",
                    rc=None,
                    stats_received=False,
                    completion="",
                    artifacts_dir=batch_dir,
                    duration=0.0,
                    hosts={},
                    by_reconcile_id={item.reconcile_id: HostOutcome(failed=True, message=message) for item in group},
                )
            self.metrics.ansible_runs.labels(**self.labels).inc()
            self.metrics.ansible_run_objects.labels(**self.labels).observe(len(group))
            alone = group[0].obj if len(group) == 1 else None
            log.info(
                "ansible run finished",
                extra=fields(
                    kind=self.watch.gvk.kind,
                    # A run of one object names it, as every other line about that object does.
                    namespace=(namespace_of(alone) or None) if alone is not None else None,
                    name=name_of(alone) if alone is not None else None,
                    run=outcome.ident,
                    objects=len(group),
                    status=outcome.status,
                    rc=outcome.rc,
                    seconds=round(outcome.duration, 3),
                    artifacts=str(outcome.artifacts_dir),
                ),
            )

            def finish(item: RunItem, outcome: RunOutcome = outcome) -> None:
                plan = by_id[item.reconcile_id]
                host = outcome.by_reconcile_id.get(item.reconcile_id) or HostOutcome(failed=True, message="no result")
                try:
                    self._finish(plan, item, host, outcome)
                except Exception:  # one object's bookkeeping must not lose the others'
                    log.exception("finishing a reconcile failed", extra=fields(**self._context(plan)))
                    self._finish_quietly(plan, None)
                    self.queue.add_rate_limited(plan.key)

            self._each(finish, list(group))

    # -- after the run ----------------------------------------------------------------------

    def _owned_by(self, produced: ProducedObject, obj: KubeObject) -> bool:
        if uid_of(obj) in produced.owner_uids:
            return True
        if produced.owner_annotation:
            expected_type = f"{self.watch.gvk.kind}.{self.watch.gvk.group}"
            expected_name = f"{namespace_of(obj)}/{name_of(obj)}" if namespace_of(obj) else name_of(obj)
            return produced.owner_annotation == expected_name and produced.owner_type_annotation == expected_type
        return False

    def _finish(self, plan: ReconcilePlan, item: RunItem, host: HostOutcome, outcome: RunOutcome) -> None:
        context = {**self._context(plan), "run": outcome.ident}
        if self.cancel.is_set():
            self._finish_quietly(plan, "run cancelled by shutdown; left for the next process")
            return
        succeeded = not host.failed
        for error in host.directive_errors:
            log.warning("ignored a directive from the role", extra=fields(**context, error=error))
        for metric in host.metrics:
            try:
                self.metrics.apply_user_metric(metric)
            except MetricError as exc:
                log.warning("refused a role metric", extra=fields(**context, metric=metric.get("name"), error=str(exc)))
        if self.watch.watch_dependent_resources:
            for produced in host.produced.values():
                if self._owned_by(produced, plan.obj):
                    self.router.ensure_watch(produced, owner_watch=self.watch)
        written = {(p.uid, p.resource_version) for p in host.produced.values()}

        if succeeded and plan.finalizer_run and self.finalizer_name:
            try:
                self.writes.remove_finalizer(plan.key, self.finalizer_name)
                log.info("finalizer ran; removed it", extra=fields(**context, finalizer=self.finalizer_name))
            except NotFoundError:
                pass
            except KubeError as exc:
                succeeded = False
                host.message = f"Failed to remove finalizer {self.finalizer_name}: {exc}"
        if self.watch.manage_status and self.resource.has_status:
            result = (
                ansible_result(host.counts, outcome.completion or now_rfc3339()) if outcome.stats_received else None
            )
            try:
                self.writes.conditions(
                    plan.key,
                    lambda conditions: done_conditions(
                        conditions,
                        succeeded=succeeded,
                        ansible_result=result,
                        failure_message=host.message,
                        now=now_rfc3339(),
                    ),
                )
            except NotFoundError:
                pass
            except KubeError as exc:
                log.warning("could not write the final status", extra=fields(**context, error=str(exc)))
        now = time.monotonic()
        self.metrics.reconcile_seconds.labels(GVK=self.gvk_label).observe(now - plan.began)
        current = fingerprint(item.obj, finalizer_run=plan.finalizer_run, watch_inputs=self.watch_inputs)
        if succeeded:
            period = host.requeue_after if host.requeue_after is not None else plan.period
            record = RunRecord(fingerprint=current, succeeded=True, finished_at=now, period=period)
            self.queue.forget(plan.key)
            # A deadline left from an earlier run (earlier, so it would win) must not
            # stand in for this one: it would fire early, be skipped, and no timer
            # would be left for this run's period.
            self.queue.cancel_delayed(plan.key)
            if period > 0:
                self.queue.add_after(plan.key, period)
            self.metrics.reconcile_result.labels(GVK=self.gvk_label, result="succeeded").inc()
            self._count("succeeded", plan.began)
            log.info(
                "reconciled",
                extra=fields(**context, changed=host.counts.get("changed", 0), requeue_after=period or None),
            )
        else:
            delay = self.queue.add_rate_limited(plan.key)
            previous = self.objects.last_record(plan.key)
            # The same failure again is no news: logged once at error, its retries at debug with their count
            # (the object's conditions and Events still show each one).
            repeated = previous is not None and not previous.succeeded and previous.failure == host.message
            failures = previous.failures + 1 if repeated and previous is not None else 1
            record = RunRecord(
                fingerprint=current,
                succeeded=False,
                finished_at=now,
                period=0.0,
                retry_at=now + delay,
                failure=host.message,
                failures=failures,
            )
            self.metrics.reconcile_result.labels(GVK=self.gvk_label, result="failed").inc()
            self._count("failed", plan.began)
            log.log(
                logging.DEBUG if repeated else logging.ERROR,
                "reconcile failed",
                extra=fields(**context, error=host.message, retry_in=delay, failures=failures),
            )
            self.writes.failure_event(plan.key, plan.obj, host.message, finalizer_run=plan.finalizer_run)
        foreign = self.objects.finish(plan.key, record, written)
        if foreign:
            self.dependent_changed(plan.key, foreign[-1])

    # -- API writes ---------------------------------------------------------------------------

    def _mark_error(self, obj: KubeObject, message: str) -> None:
        if not (self.watch.manage_status and self.resource.has_status):
            return
        try:
            self.writes.conditions(key_of(obj), lambda c: error_conditions(c, message=message, now=now_rfc3339()))
        except KubeError as exc:
            log.warning("could not write the error status", extra=fields(kind=self.watch.gvk.kind, error=str(exc)))


class Manager:
    """All controllers of the process; started when this process leads."""

    def __init__(
        self,
        *,
        watches: list[Watch],
        resources: Mapping[GroupVersionKind, Resource],
        kube: KubeClient,
        runner: AnsibleRunner,
        metrics: OperatorMetrics,
        settings: Settings,
        identity: str,
    ) -> None:
        self.router = DependentRouter(kube, settings, metrics, identity)
        self.controllers = [
            Controller(
                watch=watch,
                resource=resources[watch.gvk],
                kube=kube,
                runner=runner,
                metrics=metrics,
                settings=settings,
                router=self.router,
            )
            for watch in watches
        ]
        for controller in self.controllers:
            self.router.register(controller)
        self.started = threading.Event()

    def start(self) -> None:
        for controller in self.controllers:
            controller.start()
        self.started.set()

    def synced(self) -> bool:
        return self.started.is_set() and all(c.synced() for c in self.controllers)

    def unknown_object(self, labels: Mapping[str, str]) -> str | None:
        """Which object a metric's labels describe (``<kind>_namespace``, ``<kind>_name``) that no watch cache
        holds; None when every one they describe is there. Labels that describe nothing are an answer too: such a
        series would outlive every object."""
        described = False
        for controller in self.controllers:
            kind = controller.watch.gvk.kind
            namespace, name = labels.get(f"{kind.lower()}_namespace"), labels.get(f"{kind.lower()}_name")
            if namespace is None or name is None:
                continue
            described = True
            if controller.cached(object_key(namespace, name)) is None:
                return f"{kind} {namespace}/{name} is not in this operator's watches"
        return None if described else "the labels describe no watched object (<kind>_namespace and <kind>_name)"

    def stop(self, grace: float) -> bool:
        """Stop every controller within ``grace`` seconds in total; True if no run had to be cancelled."""
        deadline = time.monotonic() + grace
        finished = True
        # Stop handing out work everywhere first, so no kind starts new runs while another drains.
        for controller in self.controllers:
            controller.queue.shutdown()
        for controller in self.controllers:
            finished = controller.stop(max(deadline - time.monotonic(), 0.0)) and finished
        self.router.stop()
        return finished


def discover_resources(kube: KubeClient, watches: list[Watch]) -> dict[GroupVersionKind, Resource]:
    """Look every watched kind up; PermanentKubeError names the first that is not served."""
    resources = {}
    for watch in watches:
        gvk = watch.gvk
        try:
            resources[gvk] = kube.discover(gvk.group, gvk.version, gvk.kind)
        except NotFoundError as exc:
            raise PermanentKubeError(str(exc), status=404) from None
        if not resources[gvk].has_status and watch.manage_status:
            log.warning(
                "kind has no status subresource; status will not be managed",
                extra=fields(kind=gvk.kind, group=gvk.group),
            )
    return resources
