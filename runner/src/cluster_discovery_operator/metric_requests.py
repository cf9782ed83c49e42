"""Role metrics set between runs by the pod's other containers, on a Unix socket.

A role sets its metrics during a run (``osdk_metric``, read from the run's
event stream, applied by :mod:`metrics`). What a role counts can change
between its runs: the discovery agent turns a Peer Offline within seconds of
the Offline time, while the identity role's next round, which sets the peer
gauges, may be two minutes away, and an alert on them waits that long to fire
and as long to resolve. So the agent sends the same requests here, one JSON
object per line, and each is applied as a run's would be.

**Who can send.** Processes of the operator's own user (``SO_PEERCRED``, as
the module zygote checks) that can open the socket file, which is made mode
0600: in the manager Deployment, the operator's and the agent's containers,
which share its directory (an emptyDir). No other pod and nothing on the
network reaches it; operator-sdk's ``osdk_metric`` listener, by contrast, is
plain HTTP on a port.

**What is applied.** A request passes the checks of a run's
(:meth:`OperatorMetrics.apply_user_metric`), and must describe objects this
operator watches and has in its caches (the ``<kind>_namespace`` and
``<kind>_name`` labels): those labels also take the series away when the object
goes, and a request that arrived after its object was deleted would otherwise
bring a series back for good. A line that is not such a request is logged and
skipped; the connection goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socketserver
import stat
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .logs import fields
from .metrics import MetricError, OperatorMetrics
from .zygote import same_user

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024
"""A request is a few hundred bytes; a longer line is refused unread."""

UnknownObject = Callable[[Mapping[str, str]], str | None]
"""Given a request's labels, the first object they describe that is not watched and present (as
``<kind> <namespace>/<name>``), or why they describe none; None when all are there."""


class MetricRequests:
    """Listens on ``path`` while started."""

    def __init__(self, path: Path, metrics: OperatorMetrics, *, unknown_object: UnknownObject) -> None:
        self.path = path
        self._metrics = metrics
        self._unknown_object = unknown_object
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (replacing a socket left by an earlier process); OSError when that cannot be done."""
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()
        apply = self.apply

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if not same_user(self.request):
                    log.warning("refused a metric request", extra=fields(error="sent by another user"))
                    return
                while line := self.rfile.readline(MAX_LINE_BYTES + 1):
                    if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                        log.warning("refused a metric request", extra=fields(error="line too long; connection closed"))
                        return
                    apply(line)

        server = socketserver.ThreadingUnixStreamServer(os.fspath(self.path), Handler, bind_and_activate=False)
        server.daemon_threads = True
        try:
            server.server_bind()
            os.chmod(self.path, 0o600)
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metric requests", daemon=True)
        self._thread.start()
        log.info("listening for role metrics", extra=fields(socket=os.fspath(self.path)))

    def apply(self, line: bytes) -> bool:
        """Apply one request line; False when it is refused, logged with why: at debug level when it describes an
        object this operator does not have (deleted meanwhile, or this replica does not lead), else a warning."""
        try:
            request: Any = json.loads(line)
        except ValueError as exc:
            log.warning("refused a metric request", extra=fields(error=f"not JSON: {exc}"))
            return False
        if not isinstance(request, dict):
            log.warning("refused a metric request", extra=fields(error="not a JSON object"))
            return False
        labels = request.get("labels")
        unknown = (
            self._unknown_object({str(k): str(v) for k, v in labels.items()})
            if isinstance(labels, dict)
            else "labels must be a mapping of label names to values"
        )
        if unknown is not None:
            log.debug("refused a metric request", extra=fields(metric=request.get("name"), error=unknown))
            return False
        try:
            self._metrics.apply_user_metric(request)
        except MetricError as exc:
            log.warning("refused a metric request", extra=fields(metric=request.get("name"), error=str(exc)))
            return False
        return True

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None
