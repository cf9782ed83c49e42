"""/healthz and /readyz, plain HTTP, for the kubelet.

``/healthz`` answers 200 while the process serves requests at all; it exists so
a deadlocked process is restarted. ``/readyz`` says honestly what the process is
doing, because a Deployment with leader election runs a leader and standbys:

- 200 ``ok: leader, watches synced`` once it leads and every watch has listed;
- 200 ``ok: standby, waiting for lease <namespace>/<name> (held by <holder>)``
  for a standby: it is healthy and ready to take over, and reports so;
- 503 while the leader's watches are still listing, and during shutdown.

The answer comes from a callable supplied by ``cli``, so this module knows
nothing of controllers or leases. The discovery agent serves its probes with
this server too, giving a liveness callable: its ``/healthz`` fails when one of
its threads died, so the kubelet restarts it.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable
from typing import Any

from .httpserver import ThreadingHTTPServer
from .logs import fields
from .settings import ProbeSettings, parse_bind_address

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]
"""Returns (ready, one-line explanation)."""


def _alive() -> tuple[bool, str]:
    return True, "ok"


class _Server(ThreadingHTTPServer):
    purpose = "probes"


class ProbeServer:
    def __init__(self, settings: ProbeSettings, readiness: Readiness, liveness: Readiness = _alive) -> None:
        self.settings = settings
        self.readiness = readiness
        self.liveness = liveness
        self._server: _Server | None = None
        self.address: tuple[str, int] | None = None

    def start(self) -> tuple[str, int] | None:
        bind = parse_bind_address(self.settings.bind_address)
        if bind is None:
            return None
        readiness, liveness = self.readiness, self.liveness

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/livez"):
                    alive, detail = liveness()
                    self._reply(200 if alive else 503, detail)
                elif path == "/readyz":
                    ready, detail = readiness()
                    self._reply(200 if ready else 503, detail)
                else:
                    self._reply(404, "not found")

            def _reply(self, code: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(bind, Handler)
        self.address = (bind[0], self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="probe-server", daemon=True).start()
        log.info("serving health probes", extra=fields(address=f"{self.address[0]}:{self.address[1]}"))
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
