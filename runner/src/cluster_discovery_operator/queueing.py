"""A work queue keyed by object: one reconcile per object at a time, bursts collapse.

The design is controller-runtime's workqueue (which operator-sdk's Ansible
operator uses) with kopf's batching idea, for these reasons:

- **Keyed, not event-sourced.** The queue holds object keys, never events. A
  reconcile reads the object's *current* state from the watch cache, so ten
  events about one object while it waits are one reconcile ("bursts collapse").
- **Never twice at once.** A key being processed is not handed to another
  worker; an ``add`` during processing marks it dirty and it is queued again
  when the running reconcile calls ``done`` (so no change is ever lost, and two
  ansible runs never race on the same object).
- **Delays are data, not threads.** ``add_after`` records a deadline in a heap;
  whichever worker waits next sleeps only until the earliest deadline. The
  periodic requeue (reconcilePeriod, the annotation, requeue_after) and the
  retry backoff both use it. The earliest deadline for a key wins.
- **Backoff per key.** ``add_rate_limited`` counts consecutive failures of a key
  and delays it ``base * factor**n`` seconds, capped; ``forget`` (after a good
  run) resets the count. Unlike controller-runtime there is no jitter: the
  sequence is predictable, which the tests check and users can read in the
  logs.
- **Batches without waiting for nothing.** ``get`` returns one key as soon as it
  is ready. Only when that key turns out to need ansible does the worker call
  ``get_ready`` to take up to N more ready keys, waiting at most a short window
  for them, so a burst of new objects shares one ansible-playbook process
  while a lone change is not delayed.

FIFO order among ready keys; a fresh key goes behind the ones already waiting.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .settings import QueueingSettings

K = TypeVar("K", bound=Hashable)


def backoff_delay(failures: int, settings: QueueingSettings) -> float:
    """Delay before retry number ``failures + 1``: base, base*factor, base*factor**2, ... capped at max."""
    if failures < 0:
        failures = 0
    # Cap the exponent first so a long-broken object cannot overflow the float.
    exponent = min(failures, 64)
    return float(min(settings.backoff_base * settings.backoff_factor**exponent, settings.backoff_max))


class WorkQueue(Generic[K]):
    """Thread-safe keyed queue with processing/dirty sets, delays and per-key backoff."""

    def __init__(
        self,
        settings: QueueingSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_depth = on_depth
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._deadlines: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()
        self._failures: dict[K, int] = {}
        self._shut_down = False

    # -- adding -------------------------------------------------------------

    def add(self, key: K) -> None:
        """Queue ``key`` now (a no-op if it already waits; deferred if it is being processed)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shut_down:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._ready.append(key)
        self._report_depth()
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds have passed (the earliest pending deadline wins)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shut_down:
                return
            deadline = self._clock() + delay
            current = self._deadlines.get(key)
            if current is not None and current <= deadline:
                return
            self._deadlines[key] = deadline
            heapq.heappush(self._heap, (deadline, next(self._sequence), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Queue ``key`` after its backoff delay and count the failure; return the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = backoff_delay(failures, self._settings)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """Reset ``key``'s failure count (after a successful reconcile)."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def cancel_delayed(self, key: K) -> None:
        """Drop ``key``'s pending deadline (the object is gone)."""
        with self._cond:
            self._deadlines.pop(key, None)

    # -- taking -------------------------------------------------------------

    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys to the ready queue; return seconds until the next deadline."""
        now = self._clock()
        while self._heap:
            deadline, _, key = self._heap[0]
            if self._deadlines.get(key) != deadline:
                heapq.heappop(self._heap)  # superseded by an earlier deadline, or cancelled
                continue
            if deadline > now:
                return deadline - now
            heapq.heappop(self._heap)
            del self._deadlines[key]
            self._add_locked(key)
        return None

    def _take_locked(self) -> K:
        key = self._ready.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        self._report_depth()
        return key

    def get(self, timeout: float | None = None) -> K | None:
        """Block until a key is ready and mark it processing; None on shutdown or timeout."""
        end = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shut_down:
                    return None
                wait = self._promote_due_locked()
                if self._ready:
                    return self._take_locked()
                if end is not None:
                    remaining = end - self._clock()
                    if remaining <= 0:
                        return None
                    wait = remaining if wait is None else min(wait, remaining)
                self._cond.wait(wait)

    def get_ready(self, limit: int, wait: float) -> list[K]:
        """Take up to ``limit`` more ready keys, waiting at most ``wait`` seconds for them to appear."""
        taken: list[K] = []
        if limit <= 0:
            return taken
        end = self._clock() + wait
        with self._cond:
            while not self._shut_down:
                self._promote_due_locked()
                while self._ready and len(taken) < limit:
                    taken.append(self._take_locked())
                remaining = end - self._clock()
                if len(taken) >= limit or remaining <= 0:
                    break
                self._cond.wait(remaining)
        return taken

    def done(self, key: K) -> None:
        """The reconcile of ``key`` finished; queue it again if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key)
            self._cond.notify_all()

    # -- lifecycle and introspection ------------------------------------------

    def shutdown(self) -> None:
        """Stop handing out keys; keys being processed may still call done()."""
        with self._cond:
            self._shut_down = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is being processed; False if ``timeout`` passed first."""
        end = self._clock() + timeout
        with self._cond:
            while self._processing:
                remaining = end - self._clock()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def depth(self) -> int:
        """Keys ready and waiting for a worker."""
        with self._cond:
            return len(self._ready)

    @property
    def delayed(self) -> int:
        with self._cond:
            return len(self._deadlines)

    @property
    def processing(self) -> int:
        with self._cond:
            return len(self._processing)

    def _report_depth(self) -> None:
        if self._on_depth is not None:
            self._on_depth(len(self._ready))
