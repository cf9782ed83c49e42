"""What /proc says of a process and the processes under it: the figures benchmarks print and leak checks compare.

Linux only, like the rest of the test bed. A process that has gone reads as nothing (no children, zero RSS), so a
caller sampling a tree that changes under it never fails on a race.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Collection
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int | None) -> list[int]:
    """The direct children of ``pid``, whichever of its threads started them (the kernel lists them per thread)."""
    if pid is None:
        return []
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for thread in threads:
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in Path(f"/proc/{pid}/task/{thread}/children").read_text().split())
    return found


def descendants(pid: int | None) -> list[int]:
    """Every process under ``pid``, parents before their children."""
    found: list[int] = []
    pending = children(pid)
    while pending:
        child = pending.pop(0)
        found.append(child)
        pending.extend(children(child))
    return found


# What tells the operator's zygotes apart in a command line (zygote.py starts them with the kind first).
MODULE_ZYGOTE = b"zygote\0serve\0--socket"
PLAYBOOK_ZYGOTE = b"zygote\0serve\0--playbooks"


def children_running(pid: int | None, marker: bytes) -> list[int]:
    """The direct children of ``pid`` whose command line holds ``marker`` (for example :data:`MODULE_ZYGOTE`)."""
    return [child for child in children(pid) if marker in cmdline(child)]


def child_running(pid: int | None, marker: bytes) -> int | None:
    """The first of :func:`children_running`; None when there is none."""
    return next(iter(children_running(pid, marker)), None)


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


def started(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); None once it has gone. With the PID it names one process:
    a PID the kernel gave again to another process reads with another start."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


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


def tree_cpu_seconds(pid: int | None, *, exclude: Collection[int] = ()) -> float:
    """CPU seconds used so far by ``pid`` and every process under it, ended or running, except ``exclude``'s trees.

    ``cpu_seconds(children=True)`` counts a child only once it has been waited
    for: a run in progress at either end of a measured window is counted whole
    or not at all. Counting the running ones too, each window gets the CPU
    spent within it.
    """
    if pid is None or pid in exclude:
        return 0.0
    return cpu_seconds(pid, children=True) + sum(tree_cpu_seconds(child, exclude=exclude) for child in children(pid))


# /proc/net/tcp's connection states (include/net/tcp_states.h) that a leak check tells apart.
TCP_STATES = {"01": "established", "06": "time-wait", "07": "closed", "08": "close-wait", "0A": "listening"}


def open_files(pid: int | None) -> Counter[str]:
    """What ``pid``'s file descriptors are, counted: a TCP connection as its peer and state, a file as its path.

    Where a count of open files grows, this says whether the growth is a bounded connection pool or a leak.
    """
    found: Counter[str] = Counter()
    if pid is None:
        return found
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    sockets = _tcp_sockets(pid)
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed since the listing
        inode = re.fullmatch(r"socket:\[(\d+)\]", target)
        if inode:
            found[sockets.get(inode.group(1), "socket (not TCP)")] += 1
        elif target.startswith(("pipe:", "anon_inode:")):
            found[target.split(":[", 1)[0]] += 1
        else:
            found[target] += 1
    return found


def _tcp_sockets(pid: int) -> dict[str, str]:
    """Socket inode -> "tcp to <peer> (<state>)" for the TCP sockets of ``pid``'s network namespace."""
    sockets: dict[str, str] = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            state = TCP_STATES.get(fields[3], f"state {fields[3]}")
            peer = _address(fields[2]) if state != "listening" else _address(fields[1])
            sockets[fields[9]] = f"tcp {'listening on' if state == 'listening' else 'to'} {peer} ({state})"
    return sockets


def _address(hex_address: str) -> str:
    """ "0100007F:1F90" -> "127.0.0.1:8080": /proc/net/tcp{,6} keep each 32-bit word in host (little-endian) order."""
    host, port = hex_address.split(":")
    raw = b"".join(bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, len(host), 8))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"{ip}:{int(port, 16)}"
