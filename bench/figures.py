"""What the benchmarks share: waiting for a condition while timing it, percentiles, and log timestamps."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable


def measure(condition: Callable[[], bool], *, timeout: float = 120, interval: float = 0.05) -> float:
    """Seconds until ``condition`` holds; TimeoutError after ``timeout``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"not reached within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - began


def percentile(values: list[float], fraction: float) -> float:
    """The value at ``fraction`` of the sorted values (nearest rank)."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def log_time(ts: str) -> float:
    """A product log line's ``ts`` (``2026-12-01T17:32:03.952Z``) in seconds since the epoch."""
    moment = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=datetime.UTC).timestamp()
