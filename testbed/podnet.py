"""The network stand-in for kubo pods: one loopback IP per pod, and listen addresses bound to it.

In a cluster every pod has its own network namespace, so every kubo pod can
listen on 4001/5001/8080. Here all "pods" are processes in the host's network
namespace, so each pod gets its own address in 127.0.0.0/8 (Linux routes the
whole block to ``lo``, no set-up needed) and, just before ``ipfs daemon``
starts, the kubo config is rewritten so that whatever the pod asked to bind on
all interfaces (``0.0.0.0``) or on its own loopback (``127.0.0.1``, private to a
real pod) binds to the pod IP instead; IPv6 listeners are dropped, as ``::``
would take the port on every address. Nothing else in the config is touched.

Pod IPs are shared by every test session on the machine (other engineers run
kubelets too), so one is held through a lock file for as long as the pod lives.
The pod's processes inherit the locked descriptor: the kernel drops the lock
only when the kubelet and every process of the pod have exited, so neither a
crashed session nor a daemon that outlived it lets an address be handed out
while something still listens on it. An address whose kubo ports are taken
anyway (by something outside this scheme) is skipped.

``python -m testbed.podnet <repo> <pod-ip>`` rewrites ``<repo>/config``; the
pod's ``ipfs`` shim calls it (see testbed.kuboimage).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

_LOCK_DIR = Path(tempfile.gettempdir()) / "cluster-discovery-testbed" / "pod-ips"
# 127.0.0.1 is the host's own; 127.0.1.1 is the hostname on Debian-like systems.
_RESERVED = {"127.0.0.1", "127.0.1.1"}
_ADDRESS_KEYS = ("Swarm", "API", "Gateway")
# Swarm, RPC API and gateway ports of the ipfs/kubo image.
KUBO_PORTS = (4001, 5001, 8080)


class PodIP:
    """A pod IP held for the pod's life; :meth:`release` gives it back."""

    def __init__(self, ip: str, lock_fd: int) -> None:
        self.ip = ip
        self._fd: int | None = lock_fd

    @property
    def lock_fd(self) -> int:
        """The locked descriptor, for the pod's processes to inherit."""
        if self._fd is None:
            raise RuntimeError(f"pod IP {self.ip} was released")
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"PodIP({self.ip})"


def allocate_pod_ip() -> PodIP:
    """The first free 127.0.x.y (x in 0..255, y in 2..254) not held by any process on this machine."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for third in range(256):
        for fourth in range(2, 255):
            ip = f"127.0.{third}.{fourth}"
            if ip in _RESERVED:
                continue
            fd = os.open(_LOCK_DIR / ip, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if not _ports_free(ip):
                os.close(fd)
                continue
            return PodIP(ip, fd)
    raise RuntimeError(
        f"no pod IP in 127.0.0.0/16 is free: each is held (locks in {_LOCK_DIR}) or has one of the ports"
        f" {KUBO_PORTS} taken (a process listening on 0.0.0.0 takes them on every address)"
    )


def _ports_free(ip: str) -> bool:
    for port in KUBO_PORTS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((ip, port))
            except OSError:
                return False
    return True


def rewrite_multiaddr(addr: str, pod_ip: str) -> str | None:
    """``addr`` bound to ``pod_ip`` instead of all interfaces or loopback; None for IPv6 (dropped)."""
    parts = addr.split("/")
    # "/ip4/0.0.0.0/tcp/4001".split("/") == ["", "ip4", "0.0.0.0", "tcp", "4001"]
    if len(parts) < 3:
        return addr
    if parts[1] == "ip6":
        return None
    if parts[1] == "ip4" and parts[2] in ("0.0.0.0", "127.0.0.1"):
        parts[2] = pod_ip
        return "/".join(parts)
    return addr


def rewrite_listen_addresses(config: dict[str, Any], pod_ip: str) -> dict[str, Any]:
    """A copy of a kubo config whose Addresses.Swarm/API/Gateway listen on ``pod_ip``."""
    result: dict[str, Any] = json.loads(json.dumps(config))
    addresses = result.get("Addresses")
    if not isinstance(addresses, dict):
        return result
    for key in _ADDRESS_KEYS:
        value = addresses.get(key)
        if isinstance(value, str):
            rewritten = rewrite_multiaddr(value, pod_ip)
            addresses[key] = rewritten if rewritten is not None else []
        elif isinstance(value, list):
            kept = [rewrite_multiaddr(item, pod_ip) for item in value if isinstance(item, str)]
            addresses[key] = [item for item in kept if item is not None]
    return result


def rewrite_repo(repo: Path, pod_ip: str) -> None:
    """Rewrite ``repo/config`` in place (atomically)."""
    path = repo / "config"
    config = json.loads(path.read_text())
    rewritten = rewrite_listen_addresses(config, pod_ip)
    if rewritten == config:
        return
    with tempfile.NamedTemporaryFile("w", dir=repo, delete=False, prefix=".config-") as tmp:
        json.dump(rewritten, tmp, indent=2)
    with contextlib.suppress(OSError):
        os.chmod(tmp.name, path.stat().st_mode & 0o777)
    os.replace(tmp.name, path)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m testbed.podnet <ipfs-repo> <pod-ip>", file=sys.stderr)
        return 2
    repo, pod_ip = Path(argv[0]), argv[1]
    try:
        rewrite_repo(repo, pod_ip)
    except (OSError, ValueError) as err:
        print(f"testbed network stand-in: cannot rewrite {repo / 'config'}: {err}", file=sys.stderr)
        return 1
    print(f"testbed network stand-in: listen addresses in {repo / 'config'} bound to pod IP {pod_ip}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
