"""The identity role's peer gauges between its rounds, set through the operator's ``--role-metrics-socket``.

The role sets ``..._peers_number`` and ``..._sync_peers_number`` at each round (every 2 minutes); the agent's
passes change Peers in between (a member Offline at the Offline time, Online again when heard). After each pass
the agent sends the gauges of that pass's counts (``peer_sync.gauges``, the role's own) to the operator, which
applies them as a run's osdk_metric (runner's metric_requests.py): the MemberOffline alert and the dashboards
follow the Peers within seconds. Best effort: when the operator does not listen (starting, or run without the
socket), the next round sets the gauges anyway.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Sequence
from typing import Any

from cluster_discovery_operator.logs import fields

log = logging.getLogger(__name__)


class RoleMetrics:
    """Sends osdk_metric requests to the operator's socket at ``path``; with None, sends nothing."""

    def __init__(self, path: str | None, *, timeout: float = 2.0) -> None:
        self.path = path
        self._timeout = timeout
        self._lock = threading.Lock()
        self._failing = False

    def send(self, requests: Sequence[dict[str, Any]]) -> bool:
        """Send ``requests``, one JSON object per line; False when the operator could not be reached."""
        if self.path is None or not requests:
            return False
        data = b"".join(json.dumps(request, separators=(",", ":")).encode() + b"\n" for request in requests)
        with self._lock:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                    connection.settimeout(self._timeout)
                    connection.connect(self.path)
                    connection.sendall(data)
            except OSError as err:
                if not self._failing:
                    log.warning("could not set the peer gauges; the next round sets them", extra=fields(error=str(err)))
                self._failing = True
                return False
            if self._failing:
                log.info("setting the peer gauges again")
            self._failing = False
            return True
