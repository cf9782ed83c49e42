"""Free loopback ports for the test bed's servers.

A port is found by binding port 0 on 127.0.0.1 and reading what the kernel
chose; the socket is then closed so the server can bind it. Between the close
and the server's bind another process may take the port, so callers that start
a server retry with fresh ports when it reports "address already in use"
(:func:`is_port_clash` recognises that in a log). Within this Python process
we never hand the same port out twice, because the kernel happily returns a
just-closed port again and two fixtures starting at once would then collide.
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()

# Servers print this (Go: "bind: address already in use") when they lost the race.
_CLASH_MARKERS = ("address already in use", "eaddrinuse")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago and not handed out before."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free TCP port on {host} after 100 attempts")


def is_port_clash(log_text: str) -> bool:
    """Whether a server's log says it could not bind because the port was taken."""
    lowered = log_text.lower()
    return any(marker in lowered for marker in _CLASH_MARKERS)
