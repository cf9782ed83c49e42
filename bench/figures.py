"""What the benchmarks share: waiting for a condition while timing it, and percentiles."""

from __future__ import annotations

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
