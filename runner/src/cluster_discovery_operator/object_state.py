"""What a controller remembers of each object it reconciles, in one place under one lock.

The controller's workers, its informer's handler and the dependents router all
read and change this state; each change is one method here, so the rules
(a dependent's change while a run is under way waits for that run; a change
the run made itself is ignored) live beside the data they guard.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .bodies import ObjectKey
from .skipping import RunRecord


@dataclass(frozen=True)
class DependentTrigger:
    """A change to an object a run created or updated."""

    kind: str
    name: str
    uid: str
    resource_version: str
    event_type: str

    @property
    def reason(self) -> str:
        return f"dependent {self.kind} {self.name} changed ({self.event_type.lower()})"


@dataclass(frozen=True)
class FailureEvent:
    """The last Warning Event emitted for an object: repeated failures bump its count instead of adding Events."""

    name: str
    message: str
    count: int


@dataclass
class ObjectState:
    record: RunRecord | None = None
    """The last completed ansible run."""
    forced: str | None = None
    """Why the next reconcile must run whatever the skip rule says (a dependent changed)."""
    running: bool = False
    pending: list[DependentTrigger] = field(default_factory=list)
    """Dependents' changes seen during the run: judged against what the run wrote, once it ends."""
    written: set[tuple[str, str]] = field(default_factory=set)
    """(uid, resourceVersion) of every object the last run wrote."""
    last_event: FailureEvent | None = None
    bounded: dict[str, str] = field(default_factory=dict)
    """Annotation -> the value last bounded and logged, so one value is logged once, not at every reconcile."""


@dataclass(frozen=True)
class RunStart:
    """What the skip rule needs from the state of one object."""

    record: RunRecord | None
    forced: str | None


class ObjectStates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, ObjectState] = {}

    def _state(self, key: ObjectKey) -> ObjectState:
        return self._objects.setdefault(key, ObjectState())

    def forget(self, key: ObjectKey) -> None:
        """The object is gone."""
        with self._lock:
            self._objects.pop(key, None)

    def before_run(self, key: ObjectKey) -> RunStart:
        with self._lock:
            state = self._objects.get(key) or ObjectState()
            return RunStart(record=state.record, forced=state.forced)

    def start(self, key: ObjectKey) -> None:
        """A run begins: the reason it was forced is used up."""
        with self._lock:
            state = self._state(key)
            state.forced = None
            state.running = True

    def abandon(self, key: ObjectKey) -> None:
        """The run never happened (or crashed): it is no longer running, and what it would have judged is dropped."""
        with self._lock:
            state = self._objects.get(key)
            if state is not None:
                state.running = False
                state.pending.clear()

    def finish(self, key: ObjectKey, record: RunRecord, written: set[tuple[str, str]]) -> list[DependentTrigger]:
        """The run ended; returns the dependents' changes during it that it did not make itself."""
        with self._lock:
            state = self._state(key)
            state.record = record
            state.written = written
            state.running = False
            pending, state.pending = state.pending, []
        return [trigger for trigger in pending if (trigger.uid, trigger.resource_version) not in written]

    def last_record(self, key: ObjectKey) -> RunRecord | None:
        with self._lock:
            state = self._objects.get(key)
            return state.record if state is not None else None

    def dependent_changed(self, key: ObjectKey, trigger: DependentTrigger) -> bool:
        """Whether this change forces the owner's next run (it is then recorded as the reason).

        During a run the change waits for the run's end (``finish``); a change the last run wrote itself forces
        nothing.
        """
        with self._lock:
            state = self._state(key)
            if state.running:
                state.pending.append(trigger)
                return False
            if (trigger.uid, trigger.resource_version) in state.written:
                return False
            state.forced = trigger.reason
            return True

    def running(self) -> list[ObjectKey]:
        with self._lock:
            return sorted(key for key, state in self._objects.items() if state.running)

    def last_event(self, key: ObjectKey) -> FailureEvent | None:
        with self._lock:
            state = self._objects.get(key)
            return state.last_event if state is not None else None

    def set_last_event(self, key: ObjectKey, event: FailureEvent) -> None:
        with self._lock:
            self._state(key).last_event = event

    def first_bounded(self, key: ObjectKey, annotation: str, value: str) -> bool:
        """Record that ``annotation`` of the object was bounded at ``value``; True when that is news to log."""
        with self._lock:
            bounded = self._state(key).bounded
            if bounded.get(annotation) == value:
                return False
            bounded[annotation] = value
            return True

    def taken_as_written(self, key: ObjectKey, annotation: str) -> None:
        """``annotation`` is absent or used as written: bounding it later, at any value, is news to log again."""
        with self._lock:
            state = self._objects.get(key)
            if state is not None:
                state.bounded.pop(annotation, None)
