"""What the benchmarks share: waiting for a condition while timing it, percentiles, log timestamps, work folders."""

from __future__ import annotations

import contextlib
import datetime
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


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


@contextlib.contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    """A temporary folder for a benchmark's clusters and logs: removed when it ends, kept and named when it fails.

    It holds etcd data, the clusters' admin keys and every log; a failed run keeps them for reading.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    except BaseException:
        print(f"the work folder is kept: {folder}", flush=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
