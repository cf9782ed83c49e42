"""Every line the operator and the agent print is one JSON event, even when a thread dies."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
from cluster_discovery_operator import logs


@pytest.fixture
def configured() -> Iterator[None]:
    """Puts back the logging that the test's ``logs.configure`` replaces."""
    root = logging.getLogger()
    handlers, level, hook = root.handlers[:], root.level, threading.excepthook
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        threading.excepthook = hook


def test_a_thread_that_dies_of_an_exception_is_logged_as_one_json_event(
    configured: None, capfd: pytest.CaptureFixture[str]
) -> None:
    def watch() -> None:
        raise RuntimeError("the watch broke")

    logs.configure(level="info", fmt="json")  # here, so that its handler writes to the captured stderr
    thread = threading.Thread(target=watch, name="peer-watch")
    thread.start()
    thread.join()
    lines = capfd.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == 1, lines
    assert events[0]["level"] == "error"
    assert events[0]["thread"] == "peer-watch"
    assert "RuntimeError: the watch broke" in events[0]["exception"]
