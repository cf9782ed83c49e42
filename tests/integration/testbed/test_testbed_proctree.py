"""What the benchmarks read of a process tree: its children and the CPU it used, with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from testbed.proctree import children, cpu_seconds, tree_cpu_seconds

# Burns a CPU-second, then waits to be stopped: CPU used by a process nobody has waited for yet.
BURN = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\ntime.sleep(60)\n"
SLEEP = "import time; time.sleep(60)"


def test_children_started_by_another_thread_are_children_too() -> None:
    # The kernel lists a child under the thread that started it, while that thread lives (the operator's workers).
    started: list[subprocess.Popen[bytes]] = []
    checked = threading.Event()

    def start_and_stay() -> None:
        started.append(subprocess.Popen([sys.executable, "-c", SLEEP]))
        checked.wait(30)

    thread = threading.Thread(target=start_and_stay)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert started[0].pid in children(os.getpid())
    finally:
        checked.set()
        thread.join()
        started[0].kill()
        started[0].wait()


def test_the_cpu_of_a_tree_counts_children_still_running() -> None:
    runs_burn = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"
    parent = subprocess.Popen([sys.executable, "-c", runs_burn])
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_seconds(parent.pid) < 0.9:
            assert time.monotonic() < deadline, "the running child's CPU-second is not counted"
            time.sleep(0.1)
        # What waited-for children alone say: not that second, the child still runs.
        assert cpu_seconds(parent.pid, children=True) < 0.5
        assert tree_cpu_seconds(parent.pid, exclude=children(parent.pid)) < 0.5
    finally:
        for child in children(parent.pid):
            os.kill(child, signal.SIGKILL)
        parent.wait(timeout=30)
