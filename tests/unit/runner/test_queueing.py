"""The keyed work queue: exclusivity per key, collapsing, delays, backoff, batching, shutdown.

Covered: a key is never handed to two workers at once (also under real
threads), adds while processing are deferred not lost, bursts collapse, FIFO
order, ``add_after`` (earliest deadline wins, cancellation), the exact backoff
sequence and its reset, ``get_ready`` batching and its window, shutdown and
``wait_idle``. Delays use an injected clock, so no test sleeps for a deadline.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from cluster_discovery_operator.bodies import ObjectKey
from cluster_discovery_operator.queueing import WorkQueue, backoff_delay
from cluster_discovery_operator.settings import QueueingSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue(clock: FakeClock | None = None, **settings: float) -> WorkQueue[ObjectKey]:
    return WorkQueue(QueueingSettings(**settings), clock=clock or FakeClock())  # type: ignore[arg-type]


K = ObjectKey


def test_a_burst_of_adds_collapses_into_one_item() -> None:
    """Ten events about one object waiting in the queue are one reconcile."""
    queue = _queue()
    for _ in range(10):
        queue.add(K("ns/a"))
    assert queue.depth == 1
    assert queue.get(timeout=0) == "ns/a"
    assert queue.get(timeout=0) is None


def test_ready_keys_come_out_in_fifo_order() -> None:
    queue = _queue()
    for name in ("a", "b", "c", "a"):
        queue.add(K(name))
    assert [queue.get(timeout=0) for _ in range(3)] == ["a", "b", "c"]


def test_a_key_being_processed_is_not_handed_out_again_until_done() -> None:
    """An add during processing is remembered (dirty) and queued again on done()."""
    queue = _queue()
    queue.add(K("a"))
    assert queue.get(timeout=0) == "a"
    queue.add(K("a"))
    queue.add(K("a"))
    assert queue.get(timeout=0) is None, "the same key must not go to a second worker"
    queue.done(K("a"))
    assert queue.get(timeout=0) == "a"
    queue.done(K("a"))
    assert queue.get(timeout=0) is None, "the two adds during processing collapsed into one"


def test_no_key_is_ever_processed_twice_at_once_under_threads() -> None:
    """Eight workers hammering five keys: never two concurrent reconciles of one key, and nothing lost."""
    queue: WorkQueue[ObjectKey] = WorkQueue(QueueingSettings())
    active: Counter[str] = Counter()
    overlaps: list[str] = []
    processed: Counter[str] = Counter()
    lock = threading.Lock()
    keys = [K(f"k{i}") for i in range(5)]

    def worker() -> None:
        while (key := queue.get(timeout=0.5)) is not None:
            with lock:
                active[key] += 1
                if active[key] > 1:
                    overlaps.append(key)
            time.sleep(0.001)
            with lock:
                active[key] -= 1
                processed[key] += 1
            queue.done(key)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        for key in keys:
            queue.add(key)
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert set(processed) == set(keys)
    assert queue.depth == 0 and queue.processing == 0


def test_add_after_waits_for_its_deadline_and_the_earliest_wins() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.add_after(K("a"), 10)
    queue.add_after(K("a"), 30)
    queue.add_after(K("a"), 5)
    assert queue.get(timeout=0) is None
    clock.now += 5
    assert queue.get(timeout=0) == "a"
    queue.done(K("a"))
    clock.now += 100
    assert queue.get(timeout=0) is None, "superseded deadlines do not fire again"


def test_a_cancelled_delay_never_fires() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.add_after(K("gone"), 1)
    queue.cancel_delayed(K("gone"))
    clock.now += 10
    assert queue.get(timeout=0) is None


def test_backoff_sequence_doubles_up_to_the_ceiling() -> None:
    """base 1 s, factor 2, max 300 s: 1, 2, 4, ..., 256, 300, 300."""
    settings = QueueingSettings(backoff_base=1, backoff_factor=2, backoff_max=300)
    assert [backoff_delay(n, settings) for n in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff_delay(10_000, settings) == 300


def test_rate_limited_adds_follow_the_backoff_and_forget_resets_it() -> None:
    clock = FakeClock()
    queue = _queue(clock, backoff_base=2, backoff_factor=3, backoff_max=100)
    delays = []
    for _ in range(5):
        delays.append(queue.add_rate_limited(K("a")))
        clock.now += delays[-1]
        assert queue.get(timeout=0) == "a"
        queue.done(K("a"))
    assert delays == [2, 6, 18, 54, 100]
    assert queue.num_requeues(K("a")) == 5
    queue.forget(K("a"))
    assert queue.add_rate_limited(K("a")) == 2


def test_get_ready_takes_what_is_ready_up_to_the_limit() -> None:
    """A worker that must start ansible takes more ready keys to share the process."""
    queue = _queue()
    for name in "abcdef":
        queue.add(K(name))
    assert queue.get(timeout=0) == "a"
    assert queue.get_ready(3, wait=0) == ["b", "c", "d"]
    assert queue.get_ready(10, wait=0) == ["e", "f"]
    assert queue.processing == 6


def test_get_ready_waits_at_most_its_window_for_late_keys() -> None:
    """Keys arriving within the window join the batch; the call returns once the limit is reached."""
    queue: WorkQueue[ObjectKey] = WorkQueue(QueueingSettings())
    timer = threading.Timer(0.05, lambda: [queue.add(K("late1")), queue.add(K("late2"))])
    timer.start()
    began = time.monotonic()
    taken = queue.get_ready(2, wait=5.0)
    elapsed = time.monotonic() - began
    timer.join()
    assert taken == ["late1", "late2"]
    assert elapsed < 2.0, "returns as soon as the limit is reached, not at the end of the window"
    began = time.monotonic()
    assert queue.get_ready(5, wait=0.1) == []
    assert time.monotonic() - began >= 0.09


def test_shutdown_stops_handing_out_keys_and_wait_idle_waits_for_done() -> None:
    queue: WorkQueue[ObjectKey] = WorkQueue(QueueingSettings())
    queue.add(K("a"))
    queue.add(K("b"))
    assert queue.get(timeout=0) == "a"
    queue.shutdown()
    assert queue.get(timeout=1) is None
    queue.add(K("c"))
    assert queue.depth == 1, "nothing new is accepted after shutdown"
    assert queue.wait_idle(0.05) is False
    threading.Timer(0.05, queue.done, args=(K("a"),)).start()
    assert queue.wait_idle(5.0) is True


@pytest.mark.parametrize("failures", [-1, 0])
def test_backoff_of_no_failure_is_the_base(failures: int) -> None:
    assert backoff_delay(failures, QueueingSettings(backoff_base=1.5)) == 1.5
