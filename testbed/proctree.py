"""What /proc says of a process and the processes under it: the figures benchmarks print and leak checks compare.

Linux only, like the rest of the test bed. A process that has gone reads as nothing (no children, zero RSS), so a
caller sampling a tree that changes under it never fails on a race.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int | None) -> list[int]:
    """The direct children of ``pid``."""
    if pid is None:
        return []
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid: int | None) -> list[int]:
    """Every process under ``pid``, parents before their children."""
    found: list[int] = []
    pending = children(pid)
    while pending:
        child = pending.pop(0)
        found.append(child)
        pending.extend(children(child))
    return found


def children_running(pid: int | None, marker: bytes) -> list[int]:
    """The direct children of ``pid`` whose command line holds ``marker`` (b"zygote": the operator's module zygote)."""
    return [child for child in children(pid) if marker in cmdline(child)]


def cmdline(pid: int) -> bytes:
    """The NUL-separated argv of ``pid``; empty once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, gone but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def rss_mib(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int | None, *, children: bool) -> float:
    """utime + stime of ``pid`` (and of the children it waited for)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is the state (field 3): utime, stime, cutime, cstime are fields 14-17.
    used = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return used / TICKS


def open_fds(pid: int | None) -> int:
    """How many file descriptors ``pid`` holds open."""
    if pid is None:
        return 0
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0
