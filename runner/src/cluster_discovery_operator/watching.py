"""List, then watch, one kind in one namespace (or all): an informer with a cache.

The algorithm is client-go's reflector reduced to what the operator needs, with
the issue's restart rule:

1. **List** (paginated), replace the cache, and report the differences from the
   previous cache as events: objects that appeared are ADDED, objects whose
   resourceVersion moved are MODIFIED, objects that vanished are DELETED. The
   first list reports everything as ADDED. This diff is what makes a re-list
   lose nothing: whatever happened while no watch was open shows up as the
   events it would have produced (collapsed to the latest state, which is all a
   keyed queue needs).
2. **Watch** from the list's resourceVersion, with bookmarks (so a quiet kind's
   resourceVersion stays fresh) and a server-side timeout; apply each event to
   the cache, then report it.
3. When the stream **ends**, or the server says **410 Gone** (as a status or as
   an ERROR event: the resourceVersion is older than what the server can replay,
   after etcd compaction or when its watch cache was rebuilt), go back to 1.
   Other errors (a cut connection, 5xx, 403 while RBAC is being fixed) wait with
   a capped exponential backoff and resume watching from the last
   resourceVersion seen, which is cheaper than a list; if that version expired
   meanwhile, the server's 410 sends us back to 1. Errors are never fatal: an
   operator that exits on a blip restarts every object's ansible.

A stream that ends normally within a second without a single event is
client-go's "very short watch": the reflector counts it as an error, and so do
we (a restart of reason ``short``, then the backoff before listing again).
Otherwise a server, proxy or stand-in that closes every stream at once makes
the loop list and watch as fast as the CPU allows.

Unknown event types are logged and skipped. Handlers run on the informer's own
thread and must be quick (they enqueue keys). The cache is what reconciles read,
as controller-runtime's cached client; a reconcile that must not act on a stale
object re-reads it from the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from .bodies import KubeObject, ObjectKey, key_of, metadata, resource_version_of
from .kube import GoneError, KubeClient, KubeError, Resource
from .logs import fields
from .settings import KubeSettings

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
_BACKOFF_START = 1.0
_BACKOFF_MAX = 30.0
_SHORT_WATCH_SECONDS = 1.0


class Handler(Protocol):
    def __call__(self, event_type: str, obj: KubeObject, old: KubeObject | None, /) -> None: ...


class Informer:
    """One list+watch loop and its cache."""

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        *,
        settings: KubeSettings,
        namespace: str | None = None,
        label_selector: str | None = None,
        handler: Handler,
        on_restart: Callable[[str], None] | None = None,
        transform: Callable[[KubeObject], KubeObject] | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.settings = settings
        self.namespace = namespace or None
        self.label_selector = label_selector or None
        self.handler = handler
        self.on_restart = on_restart
        self.transform = transform
        self.synced = threading.Event()
        self.resource_version = ""
        self._store: dict[ObjectKey, KubeObject] = {}
        self._lock = threading.Lock()
        self._response: Any = None
        self._response_lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def name(self) -> str:
        scope = self.namespace or "all namespaces"
        return f"{self.resource.kind} in {scope}"

    # -- cache ------------------------------------------------------------------

    def get(self, key: ObjectKey) -> KubeObject | None:
        with self._lock:
            return self._store.get(key)

    def keys(self) -> list[ObjectKey]:
        with self._lock:
            return list(self._store)

    def objects(self) -> list[KubeObject]:
        with self._lock:
            return list(self._store.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    # -- the loop -----------------------------------------------------------------

    def _emit(self, event_type: str, obj: KubeObject, old: KubeObject | None) -> None:
        try:
            self.handler(event_type, obj, old)
        except Exception:  # a handler bug must not kill the watch
            log.exception("watch event handler failed", extra=fields(kind=self.resource.kind, event=event_type))

    def _keep(self, obj: KubeObject) -> KubeObject:
        return self.transform(obj) if self.transform is not None else obj

    def relist(self) -> str:
        """List, replace the cache, report the differences; return the list's resourceVersion."""
        items, resource_version = self.kube.list_objects(
            self.resource, namespace=self.namespace, label_selector=self.label_selector
        )
        fresh = {key_of(item): self._keep(item) for item in items}
        with self._lock:
            previous = self._store
            self._store = fresh
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None:
                self._emit(ADDED, obj, None)
            elif resource_version_of(old) != resource_version_of(obj):
                self._emit(MODIFIED, obj, old)
        for key, old in previous.items():
            if key not in fresh:
                self._emit(DELETED, old, old)
        self.resource_version = resource_version
        return resource_version

    def _apply(self, event_type: str, obj: KubeObject) -> None:
        key = key_of(obj)
        kept = self._keep(obj)
        with self._lock:
            old = self._store.get(key)
            if event_type == DELETED:
                self._store.pop(key, None)
            else:
                self._store[key] = kept
        self._emit(event_type, kept if event_type != DELETED else (old or kept), old)

    def _remember_response(self, response: Any) -> None:
        with self._response_lock:
            self._response = response
        if self._stopping.is_set():
            self._interrupt()

    def _interrupt(self) -> None:
        with self._response_lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # the stream may already be closed
                log.debug("closing a watch stream failed", exc_info=True)

    def watch_once(self, resource_version: str) -> int:
        """Follow one watch stream from ``resource_version`` until it ends or fails; return how many events it had."""
        events = self.kube.watch(
            self.resource,
            namespace=self.namespace,
            resource_version=resource_version,
            label_selector=self.label_selector,
            timeout_seconds=self.settings.watch_timeout,
            on_response=self._remember_response,
        )
        received = 0
        for event in events:
            if self._stopping.is_set():
                return received
            received += 1
            event_type = event["type"]
            obj = event["object"]
            if event_type == "BOOKMARK":
                self.resource_version = resource_version_of(obj) or self.resource_version
                continue
            if event_type == "ERROR":
                code = obj.get("code")
                message = str(obj.get("message") or obj)
                if code == 410:
                    raise GoneError(f"Failed to watch {self.resource.describe()}: 410 Gone: {message}", status=410)
                raise KubeError(f"Failed to watch {self.resource.describe()}: {code} {obj.get('reason')}: {message}")
            if event_type not in (ADDED, MODIFIED, DELETED):
                log.warning("unknown watch event type", extra=fields(kind=self.resource.kind, event=event_type))
                continue
            if not metadata(obj).get("name"):
                log.warning("watch event without an object name", extra=fields(kind=self.resource.kind))
                continue
            self._apply(event_type, obj)
            self.resource_version = resource_version_of(obj) or self.resource_version
        return received

    def run(self, stop: threading.Event) -> None:
        """List and watch until ``stop`` is set (call :meth:`stop` to interrupt a waiting stream)."""
        backoff = _BACKOFF_START
        must_list = True
        while not stop.is_set() and not self._stopping.is_set():
            try:
                if must_list:
                    self.relist()
                    self.synced.set()
                    must_list = False
                opened = time.monotonic()
                received = self.watch_once(self.resource_version)
                if stop.is_set() or self._stopping.is_set():
                    break
                must_list = True
                if received == 0 and time.monotonic() - opened < _SHORT_WATCH_SECONDS:
                    log.warning(
                        "watch ended at once without an event; listing again after a delay",
                        extra=fields(kind=self.resource.kind, namespace=self.namespace, delay=backoff),
                    )
                    self._restarted("short")
                    stop.wait(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX)
                    continue
                self._restarted("ended")
                backoff = _BACKOFF_START
            except GoneError as exc:
                if self._stopping.is_set():
                    break
                log.info(
                    "watch expired (410 Gone); listing again", extra=fields(kind=self.resource.kind, error=str(exc))
                )
                self._restarted("gone")
                must_list = True
                backoff = _BACKOFF_START
            except KubeError as exc:
                if self._stopping.is_set() or stop.is_set():
                    break
                # A cut connection resumes from the last resourceVersion seen (a list costs the server
                # more); if that version has expired meanwhile, the server says 410 and we list.
                log.warning(
                    "watch failed; resuming after a delay",
                    extra=fields(kind=self.resource.kind, namespace=self.namespace, error=str(exc), delay=backoff),
                )
                self._restarted("error")
                stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def _restarted(self, reason: str) -> None:
        if self.on_restart is not None:
            self.on_restart(reason)

    def stop(self) -> None:
        """Make :meth:`run` return promptly, even from inside a waiting watch stream."""
        self._stopping.set()
        self._interrupt()
