"""The threaded HTTP server under /metrics and the probes.

socketserver reports a request that failed (a client hanging up mid-request, a
plain-HTTP client on the TLS port) by printing a traceback between rulers of
dashes on stderr. The operator and the agent log one JSON event per line, so
both servers report it through logging instead, at debug: a client's broken
connection is not the server's error.
"""

from __future__ import annotations

import http.server
import logging
import socketserver
from typing import Any

from .logs import fields

log = logging.getLogger(__name__)


class ThreadingHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    purpose = "http"
    """Names the server in the log event of a failed connection."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection failed", extra=fields(server=self.purpose, client=str(client_address)), exc_info=True)
