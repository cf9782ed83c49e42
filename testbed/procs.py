"""Processes the test bed starts, and the guarantee that each one is stopped.

Every server (etcd, kube-apiserver, kube-controller-manager, ipfs, a "pod")
runs as a :class:`ManagedProcess`: its own session (so a shell that forks
children can be stopped with them), output to a log file we can show when it
fails, and stop by PID — SIGTERM, then SIGKILL after a grace period. We never
look processes up by name: other engineers run the same binaries on this
machine at the same time.

Fixtures stop what they started in their finalizers; this module also keeps a
registry of live processes and stops them at interpreter exit, as a backstop
for code that forgot (or a test session interrupted before teardown).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

DEFAULT_GRACE_SECONDS = 10.0

_registry_lock = threading.Lock()
_registry: dict[int, ManagedProcess] = {}


class ManagedProcess:
    """One child process with a log file, stopped by PID."""

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.argv = [os.fspath(arg) for arg in argv]
        self.pass_fds = tuple(pass_fds)
        self.name = name
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"{self.name} is already running as PID {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Append: a restart keeps the earlier run's output, which is what one
        # wants to read when the second start fails.
        with self.log_path.open("ab") as log:
            log.write(f"--- testbed: starting {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                pass_fds=self.pass_fds,
                start_new_session=True,
            )
        with _registry_lock:
            _registry[self._popen.pid] = self

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen is not None else None

    def wait(self, timeout: float | None = None) -> int:
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.wait(timeout)

    def terminate(self) -> None:
        """SIGTERM the process (and its session's children) without waiting: ``stop(terminated=True)`` waits."""
        if self._popen is not None and self._popen.poll() is None:
            self._signal(self._popen.pid, signal.SIGTERM)

    def stop(
        self, grace: float = DEFAULT_GRACE_SECONDS, *, crash: bool = False, terminated: bool = False
    ) -> int | None:
        """SIGTERM the process (and its session's children), SIGKILL after ``grace`` seconds; SIGKILL at once when
        ``crash`` (the process gets no chance to shut down). ``terminated``: ``terminate`` sent the SIGTERM already,
        and a second one would make some programs (kubo) give up their clean shutdown."""
        popen = self._popen
        if popen is None:
            return None
        try:
            if popen.poll() is None:
                if crash or not terminated:
                    self._signal(popen.pid, signal.SIGKILL if crash else signal.SIGTERM)
                try:
                    popen.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal(popen.pid, signal.SIGKILL)
                    popen.wait(10)
            # The leader may be gone while a child it forked lingers in the session.
            self._signal(popen.pid, signal.SIGKILL)
        finally:
            with _registry_lock:
                _registry.pop(popen.pid, None)
        return popen.returncode

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        # The process leads a session we created for it, so its process group id
        # is its PID: signalling the group reaches exactly what it forked.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    def rss_bytes(self) -> int:
        """Resident set size of the process now (0 when it is not running)."""
        return rss_bytes(self.pid) if self.alive() and self.pid is not None else 0

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid})"


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` from /proc, in bytes (0 if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.1, what: str) -> None:
    """Poll ``predicate()`` until it is truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop_all() -> None:
    """Stop every process still registered (the interpreter-exit backstop)."""
    with _registry_lock:
        leftovers = list(_registry.values())
    for proc in leftovers:
        proc.stop(grace=3.0)


def running() -> list[ManagedProcess]:
    with _registry_lock:
        return list(_registry.values())


atexit.register(stop_all)


def interrupt_on(*signums: signal.Signals) -> None:
    """Make each of ``signums`` that would end Python at once raise KeyboardInterrupt instead, as Ctrl-C does.

    A SIGTERM (``kill``, CI cancelling a job) or a SIGHUP (the terminal closed)
    ends Python without running ``finally`` blocks or exit handlers: every
    process it started would be left running. Interrupted instead, the
    program unwinds and stops them by PID. A signal someone already handles
    or ignores is left as it is.
    """
    for signum in signums:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
