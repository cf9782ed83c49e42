"""Small Kubernetes API helpers for the kubelet stand-in: clients, list+watch, time stamps.

The kubelet stand-in works on plain dicts (the API's JSON) rather than the
client's generated classes: it copies fields from Pod specs into processes and
writes status patches, and dicts keep field names exactly as the API spells
them.

:class:`Watcher` is one list+watch loop per resource kind: list, then watch
from the list's resourceVersion, and list again on "410 Gone" (resource
versions expire when a kind is quiet for a while, or after compaction). A
re-list hands the handler every current object as a "SYNC" event and a
synthetic "DELETED" for objects it knew that are gone, so no deletion is lost
across the gap.
"""

from __future__ import annotations

import dataclasses
import datetime
import fractions
import json
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
from cluster_discovery_operator.kube import KubeClient, NotFoundError
from cluster_discovery_operator.settings import KubeSettings
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]
Handler = Callable[[str, Obj], None]

WATCH_TIMEOUT_SECONDS = int(KubeSettings().watch_timeout)
"""Server-side watch timeout, the product's own (five minutes): each re-watch costs the API server and etcd a
new watch, so a quiet kind is watched again every five minutes, not every few seconds. A stopping watcher does
not wait it out: :meth:`Watcher.interrupt` shuts its open stream down."""


def new_api_client(kubeconfig: os.PathLike[str] | str, context: str | None = None) -> kubernetes.client.ApiClient:
    """A client for concurrent use by several threads (a larger connection pool than the default 4)."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=os.fspath(kubeconfig), context=context, client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(configuration)


def as_dict(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
    """Call a client method and return the API's JSON as a dict."""
    response = call(*args, _preload_content=False, **kwargs)
    data: Obj = json.loads(response.data)
    return data


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """MicroTime, as Lease.spec.renewTime wants it."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uid_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("uid", ""))


def ignore_not_found(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call; None if the object is gone (404) — it may be deleted while we work on it."""
    try:
        return call(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


class Watcher(threading.Thread):
    """List+watch one kind and hand each event to ``handler(type, object)`` on this thread."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        handler: Handler,
        stopping: threading.Event,
        *,
        on_error: Callable[[str], None] | None = None,
        log: Callable[[str], None] | None = None,
        **list_kwargs: Any,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._list_call = list_call
        self._handler = handler
        self._stopping = stopping
        self._on_error = on_error or (lambda message: None)
        self._log = log or (lambda message: None)
        self._list_kwargs = list_kwargs
        self._known: dict[str, Obj] = {}
        self._resource_version = ""
        self._response: Any = None  # the open watch stream, for interrupt()
        self._response_lock = threading.Lock()
        self._interrupted = False
        self.synced = threading.Event()
        """Set after the first list has been handled."""
        self.lists = 0
        """How many times the kind was listed: 1, plus one per 410 Gone."""

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self._resource_version:
                    self._resource_version = self._relist()
                self._watch()
            except ApiException as err:
                if err.status == 410:
                    self._resource_version = ""  # expired: list again
                    self._log(f"watch {self.name}: 410 Gone, listing again")
                    continue
                self._report(f"{self.name}: API error {err.status}: {err.reason}")
                self._stopping.wait(1.0)
            except Exception as err:  # a watcher must outlive a dropped connection
                if self._stopping.is_set():
                    return
                with self._response_lock:
                    interrupted, self._interrupted = self._interrupted, False
                if interrupted:
                    continue  # cut on purpose: watch again from the last version seen
                self._report(f"{self.name}: {type(err).__name__}: {err}")
                self._stopping.wait(1.0)

    def interrupt(self) -> None:
        """Cut the open watch stream: a stopping watcher ends at once; a running one watches again from the last
        version it saw (as after a dropped connection)."""
        with self._response_lock:
            self._interrupted = True
            response = self._response
        if response is not None:
            response.shutdown()

    def _relist(self) -> str:
        listing = as_dict(self._list_call, **self._list_kwargs)
        current = {uid_of(item): item for item in listing.get("items", [])}
        for uid, gone in list(self._known.items()):
            if uid not in current:
                self._dispatch("DELETED", gone)
        for item in current.values():
            self._dispatch("SYNC", item)
        self._known = current
        self.lists += 1
        self.synced.set()
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self) -> None:
        response = self._list_call(
            watch=True,
            resource_version=self._resource_version,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            allow_watch_bookmarks=True,
            _preload_content=False,
            _request_timeout=(10, WATCH_TIMEOUT_SECONDS + 30),
            **self._list_kwargs,
        )
        with self._response_lock:
            self._response = response
            cut, self._interrupted = self._interrupted, False  # an interrupt() before the stream was open
        try:
            if cut or self._stopping.is_set():
                return
            for line in kubernetes.watch.watch.iter_resp_lines(response):
                if self._stopping.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                kind = event["type"]
                raw: Obj = event["object"]
                if kind == "ERROR":
                    code = raw.get("code")
                    raise ApiException(status=code, reason=str(raw.get("message", "")))
                self._resource_version = str(raw.get("metadata", {}).get("resourceVersion") or self._resource_version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self._known.pop(uid_of(raw), None)
                else:
                    self._known[uid_of(raw)] = raw
                self._dispatch(kind, raw)
        finally:
            with self._response_lock:
                self._response = None
            response.close()
            response.release_conn()

    def _dispatch(self, kind: str, obj: Obj) -> None:
        if self._stopping.is_set():
            return
        try:
            self._handler(kind, obj)
        except Exception as err:  # one bad object must not stop the loop
            meta = obj.get("metadata", {})
            self._report(f"{self.name}: handling {kind} {meta.get('namespace')}/{meta.get('name')}: {err!r}")

    def _report(self, message: str) -> None:
        self._on_error(message)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES: dict[str, fractions.Fraction | int] = {
    "": 1, "n": fractions.Fraction(1, 10**9), "u": fractions.Fraction(1, 10**6), "m": fractions.Fraction(1, 1000),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def parse_quantity(text: str) -> fractions.Fraction:
    """A Kubernetes resource quantity ("1Gi", "500m", "1e3") as an exact fraction."""
    match = _QUANTITY.match(text.strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a resource quantity: {text!r}")
    return fractions.Fraction(match.group(1)) * _SUFFIXES[match.group(2)]


@dataclasses.dataclass(frozen=True)
class _Resource:
    group_version: str
    plural: str
    kind: str
    namespaced: bool


class ObjectReader:
    """``kubectl get KIND [NAME] -o json`` read in this process: the same JSON, without a kubectl process.

    Tests poll objects several times a second while they wait, and each kubectl
    process costs about 50 ms of CPU to start: a tenth of the suite's. KIND is
    resolved as kubectl resolves it, through the API's discovery: plural,
    singular, short name or kind, any case, optionally ``.group``; the core
    group first, then the groups in the server's order at their preferred
    version. A name not found runs discovery again once, for a
    CustomResourceDefinition created since. Requests go through the operator's
    own client (cluster_discovery_operator.kube), the product's one way of
    talking to the API.
    """

    def __init__(self, kubeconfig: os.PathLike[str] | str, context: str | None = None) -> None:
        self._client = KubeClient(KubeSettings(kubeconfig=os.fspath(kubeconfig), context=context))
        self._lock = threading.Lock()
        self._names: dict[str, _Resource] = {}

    def get(self, kind: str, name: str | None = None, *, namespace: str | None = None) -> Obj | None:
        """The object, or the list (``kind: List``, each item with its apiVersion and kind); None if it is absent.

        Without a namespace, a list spans all namespaces (``-A``).
        """
        resource = self._resource(kind)
        base = _api_path(resource.group_version)
        if resource.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif resource.namespaced and name:
            raise ValueError(f"{kind} {name}: a namespaced object is read in a namespace")
        try:
            value = self._read(f"{base}/{resource.plural}" + (f"/{name}" if name else ""))
        except NotFoundError:
            if name:
                return None
            raise
        if name is not None:
            value.get("metadata", {}).pop("managedFields", None)  # kubectl leaves them out unless asked
            return value
        items = value.get("items", [])
        for item in items:
            item.setdefault("apiVersion", resource.group_version)
            item.setdefault("kind", resource.kind)
            item.get("metadata", {}).pop("managedFields", None)
        return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}

    def close(self) -> None:
        self._client.close()

    def _resource(self, kind: str) -> _Resource:
        key = kind.lower()
        with self._lock:
            if key not in self._names:
                self._names = self._discover()
            if key not in self._names:
                raise LookupError(f'the server does not have a resource type "{kind}"')
            return self._names[key]

    def _discover(self) -> dict[str, _Resource]:
        names: dict[str, _Resource] = {}
        group_versions = ["v1"] + [
            group["preferredVersion"]["groupVersion"] for group in self._read("/apis").get("groups", [])
        ]
        for group_version in group_versions:
            group = group_version.rpartition("/")[0]
            for found in self._read(_api_path(group_version)).get("resources", []):
                if "/" in found["name"]:
                    continue  # a subresource
                resource = _Resource(group_version, found["name"], found["kind"], found["namespaced"])
                spelled = {found["name"], found.get("singularName") or found["kind"], found["kind"]}
                spelled.update(found.get("shortNames") or [])
                for spelling in spelled:
                    for key in (spelling.lower(), f"{spelling}.{group}".lower() if group else ""):
                        if key:
                            names.setdefault(key, resource)  # the first group to serve a name keeps it, as in kubectl
        return names

    def _read(self, path: str) -> Obj:
        data: Obj = self._client.request("GET", path, what=f"read {path}") or {}
        return data


def _api_path(group_version: str) -> str:
    """Where a group version is served: the core group under /api, the others under /apis."""
    return f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
