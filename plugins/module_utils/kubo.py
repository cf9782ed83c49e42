# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""A client for kubo's RPC API (``/api/v0``), on ``requests``.

Private to the collection: may change without notice. No Ansible imports: the
agent, the tests and the benchmarks use it as plain Python.

Written to kubo's documented RPC API (docs.ipfs.tech/reference/kubo/rpc and
kubo's ``core/commands``): every call is ``POST /api/v0/<command>`` with
positional arguments as repeated ``arg`` query parameters and options as
named query parameters; file arguments travel as ``multipart/form-data``.
A command answers one JSON value, or (``X-Chunked-Output``) a stream of
newline-separated JSON values, or (``X-Stream-Output``) raw bytes. A failed
command answers HTTP 500 (400 for a client error) with
``{"Message": ..., "Code": ..., "Type": "error"}``; an unknown command answers
404 in plain text.

Timeouts and retries
    Every call has a connect and a read timeout. Connection errors are retried
    a bounded number of times with exponential backoff (urllib3's ``Retry``:
    no wait before the first retry, then ``backoff * 2**n`` capped at
    ``backoff_max``); HTTP errors are never retried, since kubo answers 500 for
    refusals that a repeat would only repeat, and neither are read timeouts
    (the node is alive but busy; a repeat multiplies the wait). Whether a call
    is repeated when the connection dropped after the request may have reached
    the node depends on the call:

    ==========================================  =================================
    call                                        repeated after a dropped connection?
    ==========================================  =================================
    id, swarm/peers, bootstrap/list, config     yes: reads
    (get), swarm/peering/ls, cat, files/read
    swarm/connect, bootstrap/add, config        yes: the second run finds the
    (set), swarm/peering/add,                   state the first one made
    swarm/peering/rm, files/write, add
    (content-addressed: the same bytes give
    the same CID)
    pubsub/pub                                  no: a repeat is a second message
    pubsub/sub                                  opening only; a broken stream is
                                                not resumed (messages are lost)
    ==========================================  =================================

    A call that is not repeated after a read failure is still retried when the
    connection could not even be opened: then the node cannot have seen it.

Errors
    Every failure is a :class:`KuboError` whose message names the endpoint
    (``/api/v0/swarm/connect``) and the node (its API URL) and quotes kubo's
    own message; the HTTP status and kubo's ``Code`` are attributes and
    structured fields. Query arguments are left out of messages (they can hold
    content).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias, TypedDict, cast
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.connectionpool import ConnectionPool
    from urllib3.exceptions import ReadTimeoutError
    from urllib3.response import BaseHTTPResponse
    from urllib3.util.retry import Retry
except ImportError:  # the modules report it with missing_required_lib('requests')
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None

DEFAULT_API_URL = "http://127.0.0.1:5001"
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.5
DEFAULT_BACKOFF_MAX = 8.0
DEFAULT_CAT_LIMIT = 1024 * 1024
# Error bodies are quoted in messages; a proxy's HTML page must not flood them.
ERROR_TEXT_MAX_CHARS = 1024
API_PREFIX = "/api/v0/"
# Multibase prefix of unpadded base64url, the only encoding kubo accepts for
# binary URL arguments (pubsub topics) since 0.11 and the one it answers in.
MULTIBASE_BASE64URL = "u"

Timeout: TypeAlias = "float | tuple[float, float]"


# -- errors -------------------------------------------------------------------


class KuboError(CollectionError):
    """A kubo RPC call failed: unreachable node, timeout, refusal or unexpected answer."""

    def __init__(
        self,
        msg: str,
        *,
        endpoint: str,
        node: str,
        status: int | None = None,
        kubo_message: str | None = None,
        kubo_code: int | None = None,
    ) -> None:
        super().__init__(
            msg, endpoint=endpoint, node=node, status=status, kubo_message=kubo_message, kubo_code=kubo_code
        )
        self.endpoint = endpoint
        self.node = node
        self.status = status
        self.kubo_message = kubo_message
        self.kubo_code = kubo_code

    def with_context(self, context: str) -> KuboError:
        """The same error, its message prefixed with what the caller was doing ("Failed to connect to X")."""
        return KuboError(
            f"{context}: {self.msg}",
            endpoint=self.endpoint,
            node=self.node,
            status=self.status,
            kubo_message=self.kubo_message,
            kubo_code=self.kubo_code,
        )


class KuboContentTooLarge(KuboError):
    """Content is larger than the reader's limit; nothing of it was used."""


class KuboTimeout(KuboError):
    """kubo did not answer, or stopped sending, within the read timeout (it may still be working on the call)."""


# -- response shapes ----------------------------------------------------------


class IdInfo(TypedDict, total=False):
    ID: str
    PublicKey: str
    Addresses: list[str] | None
    AgentVersion: str
    Protocols: list[str] | None


class ConnInfo(TypedDict, total=False):
    Addr: str
    Peer: str
    Latency: str
    Muxer: str
    Direction: int


class AddrInfo(TypedDict):
    ID: str
    Addrs: list[str]


class PeeringResult(TypedDict):
    ID: str
    Status: str


@dataclass(frozen=True)
class PubsubMessage:
    """One message from ``pubsub/sub``, its multibase fields decoded."""

    sender: str
    """The publisher's peer id (kubo sends it as plain text, not multibase)."""
    data: bytes
    seqno: bytes
    topics: tuple[str, ...]


# -- multibase ----------------------------------------------------------------


def multibase_encode(data: bytes) -> str:
    """``u`` + unpadded base64url, as kubo wants binary URL arguments."""
    return MULTIBASE_BASE64URL + base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string in base64url (``u``), the encoding kubo answers pubsub fields in."""
    if not text.startswith(MULTIBASE_BASE64URL):
        raise ValueError(f"expected multibase base64url (prefix 'u'), got prefix {text[:1]!r}")
    body = text[1:]
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"invalid multibase base64url: {err}") from None


def _topic_bytes(topic: str | bytes) -> bytes:
    return topic.encode("utf-8") if isinstance(topic, str) else topic


# -- the client -----------------------------------------------------------------


def _redact_url(url: str) -> str:
    """The API URL without user info (kubo's API.Authorizations may put credentials there)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@functools.cache
def _retry_class() -> type[Retry]:
    # Defined on first use: the class derives from urllib3's, which a host without requests lacks,
    # and importing this file must still work there so that modules can say what is missing.
    class _Retry(Retry):
        """urllib3's Retry, except that a read timeout is never repeated.

        A node that did not answer in time is alive but busy (a dial, a DHT walk);
        repeating would multiply the caller's wait without a better chance.
        """

        def increment(
            self,
            method: str | None = None,
            url: str | None = None,
            response: BaseHTTPResponse | None = None,
            error: Exception | None = None,
            _pool: ConnectionPool | None = None,
            _stacktrace: TracebackType | None = None,
        ) -> Self:
            if isinstance(error, ReadTimeoutError):
                raise error.with_traceback(_stacktrace)
            return super().increment(method, url, response, error, _pool, _stacktrace)

    return _Retry


def _retry(retries: int, *, backoff: float, backoff_max: float, idempotent: bool) -> Retry:
    # urllib3 counts an error as a connect error when the request never left
    # (refused, connect timeout) and retries those for any call; read errors
    # (the connection dropped after sending) are re-raised at once when read
    # is False.
    return _retry_class()(
        total=retries,
        connect=retries,
        read=retries if idempotent else False,
        redirect=0,
        status=0,
        other=0,
        allowed_methods=frozenset({"POST"}),
        backoff_factor=backoff,
        backoff_max=backoff_max,
        raise_on_status=False,
        raise_on_redirect=False,
    )


class KuboClient:
    """Calls on one kubo node's RPC API.

    Args:
        api_url: the node's RPC API, e.g. ``http://127.0.0.1:5001``.
        timeout: read timeout in seconds for each call (methods that can take
            longer accept their own ``timeout``).
        connect_timeout: seconds to open a TCP connection.
        retries: how many times a connection failure is retried (0 disables).
        backoff: base of the exponential backoff between retries, in seconds.
        backoff_max: the longest wait between two retries.
        authorization: value of the ``Authorization`` header, for nodes whose
            ``API.Authorizations`` require one (``Basic ...`` or ``Bearer ...``).
        reauthorize: where a new ``authorization`` comes from when the node
            refuses the one held (HTTP 401 or 403): a node made anew asks for a
            new token. A refused request is sent once more with a different
            value (the node did not act on it); an unchanged one is not tried
            again. Like the kubernetes client's ``refresh_api_key_hook``.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        authorization: str | None = None,
        reauthorize: Callable[[], str | None] | None = None,
    ) -> None:
        if not HAS_REQUESTS:
            raise CollectionError("The kubo client needs the Python library requests on the host that runs it")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise KuboError(
                "The kubo API URL must look like http://host:port",
                endpoint=API_PREFIX,
                node=_redact_url(api_url),
            )
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if retries < 0:
            raise ValueError("retries must be zero or more")
        self.api_url = api_url.rstrip("/")
        self.node = _redact_url(self.api_url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._reauthorize = reauthorize
        self._sessions: dict[bool, requests.Session] = {}
        for idempotent in (True, False):
            session = requests.Session()
            adapter = HTTPAdapter(
                max_retries=_retry(retries, backoff=backoff, backoff_max=backoff_max, idempotent=idempotent)
            )
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._sessions[idempotent] = session
        self._authorize(authorization)

    def _authorize(self, authorization: str | None) -> None:
        self.authorization = authorization
        for session in self._sessions.values():
            if authorization:
                session.headers["Authorization"] = authorization
            else:
                session.headers.pop("Authorization", None)

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()

    def __enter__(self) -> KuboClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KuboClient({self.node!r})"

    # -- transport ----------------------------------------------------------

    def _timeouts(self, timeout: Timeout | None) -> tuple[float, float]:
        if timeout is None:
            return (self.connect_timeout, self.timeout)
        if isinstance(timeout, tuple):
            return timeout
        return (self.connect_timeout, timeout)

    def request(
        self,
        command: str,
        *,
        args: Sequence[str] = (),
        options: Mapping[str, str | int | float | bool | None] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        idempotent: bool,
        stream: bool = False,
        timeout: Timeout | None = None,
    ) -> requests.Response:
        """POST ``/api/v0/<command>`` and return the successful response.

        ``idempotent`` says whether the call may be repeated after the node may
        have received it (see the module docstring). Raises KuboError.
        """
        endpoint = API_PREFIX + command
        params: list[tuple[str, str]] = [("arg", arg) for arg in args]
        for name, value in (options or {}).items():
            if value is None:
                continue
            params.append((name, ("true" if value else "false") if isinstance(value, bool) else str(value)))
        response = self._post(endpoint, params, files=files, idempotent=idempotent, stream=stream, timeout=timeout)
        if response.status_code in (401, 403) and self._reauthorize is not None:
            held = self.authorization
            self._authorize(self._reauthorize())
            if self.authorization != held:
                response.close()
                response = self._post(
                    endpoint, params, files=files, idempotent=idempotent, stream=stream, timeout=timeout
                )
        if response.status_code >= 400:
            try:
                raise self._http_error(endpoint, response)
            finally:
                response.close()
        return response

    def _post(
        self,
        endpoint: str,
        params: list[tuple[str, str]],
        *,
        files: Mapping[str, tuple[str, bytes, str]] | None,
        idempotent: bool,
        stream: bool,
        timeout: Timeout | None,
    ) -> requests.Response:
        """One POST, with transport failures as KuboError; HTTP errors are the caller's to judge."""
        connect_timeout, read_timeout = self._timeouts(timeout)
        try:
            return self._sessions[idempotent].post(
                self.api_url + endpoint,
                params=params,
                files=files,
                stream=stream,
                timeout=(connect_timeout, read_timeout),
            )
        except requests.exceptions.ConnectTimeout:
            raise KuboError(
                f"Could not connect to kubo at {self.node} within {connect_timeout:g} s for {endpoint}",
                endpoint=endpoint,
                node=self.node,
            ) from None
        except requests.exceptions.ReadTimeout:
            raise KuboTimeout(
                f"kubo at {self.node} did not answer {endpoint} within {read_timeout:g} s",
                endpoint=endpoint,
                node=self.node,
            ) from None
        except requests.exceptions.ConnectionError as err:
            raise KuboError(
                f"Could not reach kubo at {self.node} for {endpoint}: {_connection_reason(err)}",
                endpoint=endpoint,
                node=self.node,
            ) from err
        except requests.exceptions.RequestException as err:
            raise KuboError(
                f"Request to kubo at {self.node} for {endpoint} failed: {type(err).__name__}",
                endpoint=endpoint,
                node=self.node,
            ) from err

    def _http_error(self, endpoint: str, response: requests.Response) -> KuboError:
        status = response.status_code
        kubo_message: str | None = None
        kubo_code: int | None = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("Type") == "error":
            kubo_message = str(body.get("Message", ""))
            code = body.get("Code")
            kubo_code = code if isinstance(code, int) else None
            detail = kubo_message
        else:
            detail = response.text.strip()[:ERROR_TEXT_MAX_CHARS] or response.reason
        hint = ""
        if status == 404:
            hint = " (this kubo does not know the command: older than the RPC API this collection is written for?)"
        elif status == 403:
            hint = " (the API refused the request: check API.Authorizations or the API's origin settings)"
        return KuboError(
            f"kubo at {self.node} answered {endpoint} with HTTP {status}: {detail}{hint}",
            endpoint=endpoint,
            node=self.node,
            status=status,
            kubo_message=kubo_message,
            kubo_code=kubo_code,
        )

    def _values(self, command: str, **kwargs: Any) -> list[Any]:
        """Call a command and parse its answer: one JSON value, or a stream of them."""
        response = self.request(command, **kwargs)
        endpoint = API_PREFIX + command
        try:
            text = response.text
        except requests.exceptions.RequestException as err:
            raise KuboError(
                f"kubo at {self.node} broke off its answer to {endpoint}: {type(err).__name__}",
                endpoint=endpoint,
                node=self.node,
                status=response.status_code,
            ) from err
        finally:
            response.close()
        values: list[Any] = []
        decoder = json.JSONDecoder()
        position = 0
        # Chunked output is JSON values separated by newlines; parse value by
        # value rather than by line so a value's own formatting never matters.
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                break
            try:
                value, position = decoder.raw_decode(text, position)
            except ValueError:
                raise KuboError(
                    f"kubo at {self.node} answered {endpoint} with something that is not JSON",
                    endpoint=endpoint,
                    node=self.node,
                    status=response.status_code,
                ) from None
            values.append(value)
        return values

    def _one(self, command: str, **kwargs: Any) -> Any:
        values = self._values(command, **kwargs)
        if len(values) != 1:
            endpoint = API_PREFIX + command
            raise KuboError(
                f"kubo at {self.node} answered {endpoint} with {len(values)} JSON values, expected one",
                endpoint=endpoint,
                node=self.node,
            )
        return values[0]

    def _object(self, command: str, **kwargs: Any) -> dict[str, Any]:
        value = self._one(command, **kwargs)
        if not isinstance(value, dict):
            endpoint = API_PREFIX + command
            raise KuboError(
                f"kubo at {self.node} answered {endpoint} with a JSON {type(value).__name__}, expected an object",
                endpoint=endpoint,
                node=self.node,
            )
        return value

    def _strings(self, command: str, **kwargs: Any) -> list[str]:
        """Commands answering ``{"Strings": [...]}`` (null when empty)."""
        return list(self._object(command, **kwargs).get("Strings") or [])

    # -- node ------------------------------------------------------------------

    def id(self) -> IdInfo:
        return cast(IdInfo, self._object("id", idempotent=True))

    # -- swarm -------------------------------------------------------------------

    def swarm_peers(self) -> list[ConnInfo]:
        return cast(list[ConnInfo], self._object("swarm/peers", idempotent=True).get("Peers") or [])

    def swarm_connect(self, *addresses: str, timeout: Timeout | None = None) -> list[str]:
        """Connect to peers (multiaddrs ending in ``/p2p/<id>``); kubo answers one line per peer."""
        return self._strings("swarm/connect", args=addresses, idempotent=True, timeout=timeout)

    def swarm_disconnect(self, *addresses: str, timeout: Timeout | None = None) -> list[str]:
        """Close connections; ``/p2p/<id>`` alone closes every connection to that peer.

        kubo answers one line per address, ``disconnect <id> success`` or
        ``disconnect <id> failure: <why>`` (``not connected`` among the reasons),
        rather than refusing the call.
        """
        return self._strings("swarm/disconnect", args=addresses, idempotent=True, timeout=timeout)

    # -- bootstrap -----------------------------------------------------------------

    def bootstrap_list(self) -> list[str]:
        return list(self._object("bootstrap/list", idempotent=True).get("Peers") or [])

    def bootstrap_add(self, *peers: str) -> list[str]:
        """Add peers to the bootstrap list (each once); kubo echoes every peer given, listed before or not."""
        return list(self._object("bootstrap/add", args=peers, idempotent=True).get("Peers") or [])

    # -- config ------------------------------------------------------------------

    def config_get(self, key: str) -> Any:
        """The value at a dotted key (``Peering.Peers``); kubo fails when the key does not exist."""
        return self._object("config", args=[key], idempotent=True).get("Value")

    def config_set(self, key: str, value: Any) -> Any:
        """Set a dotted key to any JSON value (sent with ``--json``); writes the node's config file."""
        return self._object("config", args=[key, json.dumps(value)], options={"json": True}, idempotent=True).get(
            "Value"
        )

    # -- peering ---------------------------------------------------------------------

    def peering_add(self, *addresses: str) -> list[PeeringResult]:
        """Protect and keep connected (in memory only: kubo does not save this in the config)."""
        return cast(list[PeeringResult], self._values("swarm/peering/add", args=addresses, idempotent=True))

    def peering_ls(self) -> list[AddrInfo]:
        peers = self._object("swarm/peering/ls", idempotent=True).get("Peers") or []
        return [{"ID": peer["ID"], "Addrs": list(peer.get("Addrs") or [])} for peer in peers]

    def peering_rm(self, *peer_ids: str) -> list[PeeringResult]:
        return cast(list[PeeringResult], self._values("swarm/peering/rm", args=peer_ids, idempotent=True))

    # -- pubsub ----------------------------------------------------------------------

    def pubsub_pub(self, topic: str | bytes, data: bytes) -> None:
        """Publish ``data`` (sent as a multipart file) on ``topic`` (sent multibase-encoded)."""
        self.request(
            "pubsub/pub",
            args=[multibase_encode(_topic_bytes(topic))],
            files={"file": ("data", data, "application/octet-stream")},
            idempotent=False,
        ).close()

    def pubsub_peers(self, topic: str | bytes) -> list[str]:
        """The peers this node knows to be subscribed to ``topic``: what a message published now reaches."""
        return self._strings("pubsub/peers", args=[multibase_encode(_topic_bytes(topic))], idempotent=True)

    def subscribe(
        self,
        topic: str | bytes,
        *,
        duration: float,
        max_messages: int | None = None,
        until: Callable[[PubsubMessage], bool] | None = None,
    ) -> Subscription:
        """Subscribe to ``topic`` for at most ``duration`` seconds.

        Returns once kubo has subscribed (it flushes its headers only after
        joining the topic), so a message published after this call returns is
        delivered. Iterate the result; the iteration stops at the deadline,
        after ``max_messages`` messages, or after the first message for which
        ``until`` returns true (that message is yielded). Use it as a context
        manager, or call ``close()``, to end the HTTP stream early.
        """
        if duration <= 0:
            raise ValueError("duration must be positive")
        # kubo's global `timeout` option cancels the command's context at the
        # deadline: the server ends the stream, so the client never has to
        # interrupt a blocked read. The read timeout is a safety net above it.
        response = self.request(
            "pubsub/sub",
            args=[multibase_encode(_topic_bytes(topic))],
            options={"timeout": f"{int(duration * 1000)}ms"},
            idempotent=True,
            stream=True,
            timeout=(self.connect_timeout, duration + self.timeout),
        )
        return Subscription(
            response,
            endpoint=API_PREFIX + "pubsub/sub",
            node=self.node,
            deadline=time.monotonic() + duration,
            max_messages=max_messages,
            until=until,
        )

    # -- content -------------------------------------------------------------------------

    def add(
        self, data: bytes, *, pin: bool = True, cid_version: int | None = None, timeout: Timeout | None = None
    ) -> str:
        """Add ``data`` as one file and return its CID."""
        events = self._values(
            "add",
            options={"pin": pin, "cid-version": cid_version, "progress": False},
            files={"file": ("data", data, "application/octet-stream")},
            idempotent=True,
            timeout=timeout,
        )
        hashes = [event["Hash"] for event in events if isinstance(event, dict) and event.get("Hash")]
        if not hashes:
            raise KuboError(
                f"kubo at {self.node} answered {API_PREFIX}add without a CID",
                endpoint=API_PREFIX + "add",
                node=self.node,
            )
        return str(hashes[-1])

    def cat(self, path: str, *, max_bytes: int = DEFAULT_CAT_LIMIT, timeout: Timeout | None = None) -> bytes:
        """The content at ``path`` (a CID or /ipfs/ path), refusing more than ``max_bytes``."""
        # Ask kubo for one byte past the limit: it stops reading there, and a
        # body that long proves the content is too large.
        response = self.request(
            "cat", args=[path], options={"length": max_bytes + 1}, idempotent=True, stream=True, timeout=timeout
        )
        return self._bounded_body(response, API_PREFIX + "cat", path, max_bytes)

    def _bounded_body(self, response: requests.Response, endpoint: str, path: str, max_bytes: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(chunk_size=64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise KuboContentTooLarge(
                        f"Content {path} from kubo at {self.node} is larger than the limit of {max_bytes} bytes",
                        endpoint=endpoint,
                        node=self.node,
                    )
        except requests.exceptions.RequestException as err:
            broke_off = KuboTimeout if isinstance(err.__context__, ReadTimeoutError) else KuboError
            raise broke_off(
                f"kubo at {self.node} broke off {endpoint} for {path}: {type(err).__name__}",
                endpoint=endpoint,
                node=self.node,
            ) from err
        finally:
            response.close()
        return b"".join(chunks)

    # -- mutable file system (MFS) --------------------------------------------------------
    # The node's own small, persistent store: the identity module and the
    # discovery agent keep their state there, in the node's repository, so it
    # survives process restarts and needs no volume of its own.

    def files_write(self, path: str, data: bytes) -> None:
        """Replace the MFS file ``path`` with ``data``, creating missing parent folders."""
        self.request(
            "files/write",
            args=[path],
            options={"create": True, "parents": True, "truncate": True},
            files={"file": ("data", data, "application/octet-stream")},
            idempotent=True,
        ).close()

    def files_read(self, path: str, *, max_bytes: int = DEFAULT_CAT_LIMIT) -> bytes | None:
        """The MFS file ``path``, or None when it does not exist; refuses more than ``max_bytes``."""
        try:
            response = self.request(
                "files/read", args=[path], options={"count": max_bytes + 1}, idempotent=True, stream=True
            )
        except KuboError as err:
            if _is_missing_file(err):
                return None
            raise
        return self._bounded_body(response, API_PREFIX + "files/read", path, max_bytes)


def _is_missing_file(err: KuboError) -> bool:
    # kubo has no error code for a missing MFS path: it answers 500 and says so.
    return err.status == 500 and "does not exist" in (err.kubo_message or "")


def _connection_reason(err: requests.exceptions.ConnectionError) -> str:
    """The root cause of a connection error, without the request URL (it can hold arguments)."""
    reason: object = err.args[0] if err.args else err
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the last cause
    text = str(reason)
    # urllib3 prefixes "HTTPConnection(host=..., port=...): "; keep what follows.
    if "): " in text:
        text = text.split("): ", 1)[1]
    return text or type(reason).__name__


class Subscription:
    """An open ``pubsub/sub`` stream; iterate for messages, close to end it."""

    def __init__(
        self,
        response: requests.Response,
        *,
        endpoint: str,
        node: str,
        deadline: float,
        max_messages: int | None,
        until: Callable[[PubsubMessage], bool] | None,
    ) -> None:
        self._response = response
        self._endpoint = endpoint
        self._node = node
        self.deadline = deadline
        self.max_messages = max_messages
        self._until = until
        self.received = 0
        self.closed = False

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the stream: closing the connection makes kubo cancel the subscription.

        Safe to call from another thread than the one iterating: the socket is
        shut down first, which wakes a read blocked on it (closing the response
        alone would leave that read waiting for kubo's deadline).
        """
        if not self.closed:
            self.closed = True
            connection = getattr(self._response.raw, "connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._response.close()

    def __iter__(self) -> Iterator[PubsubMessage]:
        try:
            if self.max_messages is not None and self.max_messages <= 0:
                return
            for line in self._response.iter_lines():
                if not line.strip():
                    continue
                message = self._decode(line)
                self.received += 1
                yield message
                if self.max_messages is not None and self.received >= self.max_messages:
                    return
                if self._until is not None and self._until(message):
                    return
                if time.monotonic() >= self.deadline:
                    return
        except (requests.exceptions.RequestException, OSError, AttributeError, ValueError) as err:
            # A stream closed under a blocked read ends in any of these, from
            # requests, the socket or urllib3 reading a response it no longer has.
            if self.closed or time.monotonic() >= self.deadline:
                return
            if not isinstance(err, requests.exceptions.RequestException | OSError):
                raise
            raise KuboError(
                f"The {self._endpoint} stream from kubo at {self._node} broke off: {type(err).__name__}",
                endpoint=self._endpoint,
                node=self._node,
            ) from err
        finally:
            self.close()

    def _decode(self, line: bytes) -> PubsubMessage:
        try:
            raw = json.loads(line)
            return PubsubMessage(
                sender=str(raw.get("from", "")),
                data=multibase_decode(raw["data"]) if raw.get("data") else b"",
                seqno=multibase_decode(raw["seqno"]) if raw.get("seqno") else b"",
                topics=tuple(multibase_decode(t).decode("utf-8", "replace") for t in raw.get("topicIDs") or []),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise KuboError(
                f"kubo at {self._node} sent a {self._endpoint} message that could not be decoded: {err}",
                endpoint=self._endpoint,
                node=self._node,
            ) from None
