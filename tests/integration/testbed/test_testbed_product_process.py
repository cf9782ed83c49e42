"""How the test bed stops the operator and the agent when they run as local processes (testbed/federation.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from testbed import proctree
from testbed.federation import ProductProcess

# Starts a child in a session of its own, as ansible-runner starts ansible-playbook (pexpect's pty fork), prints
# its PID, and waits: a crash of this process leaves that child behind, re-parented, out of its process group.
PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def child_of(product: ProductProcess, *, after: int | None = None) -> int:
    """The PID the process printed (its log is appended to across starts: the one after ``after``)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        printed = [int(word) for word in product.log_path.read_text().split()]
        if printed and printed[-1] != after:
            return printed[-1]
        time.sleep(0.05)
    raise AssertionError(f"{product.name} printed no child PID")


def test_what_a_crash_leaves_running_is_ended_when_the_process_starts_again(tmp_path: Path) -> None:
    product = ProductProcess(
        "crashing", [sys.executable, "-c", PARENT], log_path=tmp_path / "log", env=dict(os.environ)
    )
    children: list[int] = []
    try:
        product.start()
        children.append(child_of(product))
        product.stop(crash=True)
        # A crash kills the process alone: what it started is the product's own safeguards' to end, for now.
        assert proctree.alive(children[0])
        product.start()
        assert not proctree.alive(children[0])
        children.append(child_of(product, after=children[0]))
        product.stop(crash=True)
        assert proctree.alive(children[1])
        product.stop()  # the final stop, with nothing to start again
        assert not proctree.alive(children[1])
    finally:
        product.stop()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
