"""A scripted HTTP server on 127.0.0.1 for the kubo client's unit tests (HTTP mechanics only).

It stands in for kubo's transport, not for kubo: it records each request and
answers from a script (status, headers, body; a dropped connection; a delay;
a stream of lines). What kubo itself answers is tested against real kubo in
tests/integration.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    """Close the connection after reading the request, without answering."""
    delay: float = 0.0
    lines: list[bytes] | None = None
    """Send these as a chunked stream, one chunk per line, then hold the stream open for ``hold`` seconds."""
    hold: float = 0.0


Script = Callable[[Recorded], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
        )
        self.server.requests.append(recorded)
        reply = self.server.script(recorded)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.lines is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            try:
                for line in reply.lines:
                    self._chunk(line + b"\n")
                time.sleep(reply.hold)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass  # the client closed the stream, as it may
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], script: Script) -> None:
        super().__init__(address, _Handler)
        self.script = script
        self.requests: list[Recorded] = []


class Stub:
    """A running stub; ``url`` is its base URL, ``requests`` what it received."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        host, port = server.server_address[:2]
        self.port = int(port)
        self.url = f"http://{host}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        return self._server.requests

    def set_script(self, script: Script) -> None:
        self._server.script = script


@contextlib.contextmanager
def http_stub(script: Script, *, port: int = 0, start_after: float = 0.0) -> Iterator[Stub]:
    """Serve ``script`` on 127.0.0.1 (a free port unless given), optionally only after ``start_after`` seconds.

    The server runs in a thread of the test process and is shut down on exit.
    """
    holder: dict[str, _Server] = {}
    ready = threading.Event()

    def serve() -> None:
        if start_after:
            time.sleep(start_after)
        server = _Server(("127.0.0.1", port), script)
        holder["server"] = server
        ready.set()
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=serve, name="http-stub", daemon=True)
    thread.start()
    if not start_after:
        ready.wait(5)
        stub = Stub(holder["server"])
    else:
        stub = _LateStub(port, holder, ready)  # type: ignore[assignment]
    try:
        yield stub
    finally:
        ready.wait(start_after + 5)
        server = holder.get("server")
        if server is not None:
            server.shutdown()
            server.server_close()
        thread.join(5)


class _LateStub(Stub):
    """A stub whose server starts later: its URL is known before it listens."""

    def __init__(self, port: int, holder: dict[str, _Server], ready: threading.Event) -> None:
        self._holder = holder
        self._ready = ready
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> list[Recorded]:
        self._ready.wait(10)
        return self._holder["server"].requests


def free_port() -> int:
    """A port nothing listens on right now (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def json_reply(value: str) -> Reply:
    return Reply(body=value.encode())
