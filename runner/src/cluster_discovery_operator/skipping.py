"""The cost edge: when a reconcile may skip ansible entirely.

operator-sdk starts ansible for every reconcile it lets through its predicates:
on every start-up, for every object; on every generation change; on every
periodic resync; and twice per change (the role's own writes to dependents wake
the owner again). Starting ansible costs about a second of CPU before the first
task. This module decides, as a pure function of recorded facts, when that cost
can be avoided without changing the result.

**The rule.** A reconcile of an object starts no ansible process when all of
these hold, and runs it otherwise:

1. this process has run ansible for the object before, and that last run
   **succeeded** (a failed last run is never skipped: it is retried on the
   backoff schedule, and at once if the object's inputs change);
2. the object's **inputs fingerprint** equals the one of that run: a SHA-256 of
   the uid, ``metadata.generation``, every label and every annotation, whether
   it is being deleted with our finalizer (a finalizer run), every top-level
   field except ``metadata`` and ``status`` (so ``spec`` and any other
   top-level data), the watch's ``vars`` and finalizer ``vars``, the role or
   playbook it runs, and the snake-case and markUnsafe options;
3. **no dependent changed** since that run started: a change to an object the
   run created or updated (owner reference or operator-sdk's owner annotations)
   that the run did not make itself forces the next run;
4. the object's **period has not elapsed** since that run finished: the
   ``requeue_after`` the role asked for, else the
   ``ansible.sdk.operatorframework.io/reconcile-period`` annotation, else the
   watch's ``reconcilePeriod`` (0 = never elapses).

What is deliberately *not* an input: ``status`` (the runner and the role write
it; a status-only change never re-runs a role, as operator-sdk's
GenerationChangedPredicate also ensures), ``resourceVersion``,
``managedFields`` and ``metadata.finalizers`` (bookkeeping of the API server and
other controllers). A fresh process (restart, new leader) has no record and
runs every object once, as operator-sdk does; so a change made while no
operator was running is still acted upon.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .bodies import annotations_of, generation_of, is_deleting, labels_of, uid_of

_IGNORED_TOP_LEVEL = frozenset({"metadata", "status"})


def fingerprint(obj: Mapping[str, Any], *, finalizer_run: bool, watch_inputs: Mapping[str, Any]) -> str:
    """SHA-256 over everything a run reads that can change between runs (see the module docstring)."""
    document = {
        "uid": uid_of(obj),
        "generation": generation_of(obj),
        "labels": labels_of(obj),
        "annotations": annotations_of(obj),
        "deleting": is_deleting(obj),
        "finalizer_run": finalizer_run,
        "fields": {key: value for key, value in obj.items() if key not in _IGNORED_TOP_LEVEL},
        "watch": watch_inputs,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class RunRecord:
    """What this process remembers of an object's last completed ansible run."""

    fingerprint: str
    succeeded: bool
    finished_at: float
    """Monotonic time the run finished."""
    period: float
    """Seconds after which the object must run again (0: never by time alone)."""
    retry_at: float = 0.0
    """Monotonic time before which a failed object is not retried unless its inputs change."""
    failure: str = ""
    """Why a failed run failed."""
    failures: int = 0
    """Failed runs in a row with that same message (this one included)."""


class Decision(Enum):
    RUN = "run"
    SKIP = "skip"
    WAIT = "wait"
    """A failed object whose retry time has not come and whose inputs did not change: its retry is scheduled."""


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    why: str
    resync: bool = False
    """A run for its period alone: its inputs are those of a run that succeeded. It is not marked Running, so its
    status is written only when its outcome differs (a failure), not to restamp the same conditions (issue 20)."""


def decide(record: RunRecord | None, *, current_fingerprint: str, forced: str | None, now: float) -> Verdict:
    """Apply the rule. ``forced`` names a reason that bypasses it (a dependent changed), or is None."""
    if record is None:
        return Verdict(Decision.RUN, "first reconcile of this object by this process")
    if forced:
        return Verdict(Decision.RUN, forced)
    if record.fingerprint != current_fingerprint:
        return Verdict(Decision.RUN, "inputs changed since the last run")
    if not record.succeeded:
        if now >= record.retry_at:
            return Verdict(Decision.RUN, "retrying a failed run")
        return Verdict(Decision.WAIT, "last run failed; retry is scheduled")
    if record.period > 0 and now - record.finished_at >= record.period:
        return Verdict(Decision.RUN, "reconcile period elapsed", resync=True)
    return Verdict(Decision.SKIP, "inputs unchanged since the last successful run")
