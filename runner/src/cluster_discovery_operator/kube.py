"""The only code that talks to the Kubernetes API.

Why raw REST rather than generated API classes: the operator handles custom
resources, Events, Leases and reviews as plain JSON, and the generated models
would only be converted back to dicts. So :class:`KubeClient` borrows from the
official client exactly what is hard to get right (kubeconfig and in-cluster
loading, exec plugins and token refresh, the TLS-configured urllib3 pool of its
``ApiClient``) and sends JSON itself.

Rules every call follows:

- a timeout on every request: ``request_timeout`` for ordinary calls, the
  server-side ``timeoutSeconds`` plus a margin for watches;
- failures become our own exception types, which encode the retry policy (as
  kopf's ``errors.py`` does): :class:`TemporaryKubeError` (connection trouble,
  timeouts, 429, 5xx, 409 conflicts: retry after a delay) versus
  :class:`PermanentKubeError` (other 4xx: retrying the same request cannot
  help); :class:`GoneError` (410) tells a watcher its resourceVersion expired;
- messages follow the collection's style: "Failed to <verb> <what>: <status>
  <reason>: <the server's message>".
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException

from .bodies import Event, KubeObject, WatchEvent
from .settings import KubeSettings

log = logging.getLogger(__name__)

# Server messages can be long (a whole object echoed back); keep errors readable.
ERROR_TEXT_MAX_SIZE = 2048
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


# A pooled keep-alive connection the server has closed fails on reuse: try once more on a fresh one.
# Writes may be re-sent: ours carry a resourceVersion precondition (a duplicate gets 409) or are
# harmless to repeat (Events, reviews).
_RETRIES = urllib3.Retry(total=2, connect=2, read=1, redirect=0, status=0, other=0, allowed_methods=None)


class KubeError(Exception):
    """A request to the API server failed."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class TemporaryKubeError(KubeError):
    """Retrying later may succeed (network, timeouts, throttling, server errors, conflicts)."""


class PermanentKubeError(KubeError):
    """The server refused the request itself; the same request will fail again."""


class NotFoundError(PermanentKubeError):
    """404: the object (or the kind) does not exist."""


class ConflictError(TemporaryKubeError):
    """409: the object changed since it was read (or already exists); re-read and retry."""


class GoneError(TemporaryKubeError):
    """410: the resourceVersion a watch asked for has been compacted away; list again."""


class ConfigurationError(Exception):
    """No usable kubeconfig or in-cluster configuration."""


@dataclass(frozen=True)
class Resource:
    """A served kind: what discovery says about one group/version/kind."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    has_status: bool = False
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{urllib.parse.quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def describe(self) -> str:
        return f"{self.kind} ({self.api_version})"

    def label(self, namespace: str | None, name: str) -> str:
        """How a message names one object of this kind: ``Kind namespace/name``, or ``Kind name``."""
        return f"{self.kind} {namespace}/{name}" if namespace else f"{self.kind} {name}"


EVENTS = Resource(group="", version="v1", kind="Event", plural="events", namespaced=True)
LEASES = Resource(group="coordination.k8s.io", version="v1", kind="Lease", plural="leases", namespaced=True)


def _truncate(text: str) -> str:
    return text if len(text) <= ERROR_TEXT_MAX_SIZE else text[:ERROR_TEXT_MAX_SIZE] + "..."


def _server_message(data: bytes) -> tuple[str, str]:
    """(reason, message) from a Status body, or the raw text."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "", _truncate(data.decode("utf-8", "replace").strip())
    if isinstance(body, Mapping):
        return str(body.get("reason") or ""), _truncate(str(body.get("message") or ""))
    return "", _truncate(str(body))


def error_for_status(status: int, data: bytes, what: str) -> KubeError:
    reason, message = _server_message(data)
    text = f"Failed to {what}: {status} {reason or 'Error'}" + (f": {message}" if message else "")
    if status == 404:
        return NotFoundError(text, status=status, reason=reason)
    if status == 409:
        return ConflictError(text, status=status, reason=reason)
    if status == 410:
        return GoneError(text, status=status, reason=reason)
    if status == 429 or status >= 500:
        return TemporaryKubeError(text, status=status, reason=reason)
    return PermanentKubeError(text, status=status, reason=reason)


def load_configuration(settings: KubeSettings) -> Configuration:
    """Kubeconfig (explicit, $KUBECONFIG, ~/.kube/config), else the pod's service account."""
    configuration = Configuration()
    try:
        if settings.kubeconfig:
            kube_config.load_kube_config(
                config_file=settings.kubeconfig, context=settings.context, client_configuration=configuration
            )
            return configuration
        try:
            kube_config.load_kube_config(context=settings.context, client_configuration=configuration)
            return configuration
        except (ConfigException, OSError):
            kube_config.load_incluster_config(client_configuration=configuration)
            return configuration
    except (ConfigException, OSError, ValueError) as exc:
        where = settings.kubeconfig or "$KUBECONFIG, ~/.kube/config or the in-cluster service account"
        raise ConfigurationError(f"Failed to load a Kubernetes configuration from {where}: {exc}") from None


class KubeClient:
    """JSON over the official client's TLS pool, with our timeouts and error types."""

    def __init__(self, settings: KubeSettings, configuration: Configuration | None = None) -> None:
        self.settings = settings
        self.configuration = configuration or load_configuration(settings)
        # Workers, watchers and the metrics server share the pool.
        self.configuration.connection_pool_maxsize = max(self.configuration.connection_pool_maxsize or 0, 32)
        self._api_client = ApiClient(self.configuration)
        self._pool: urllib3.PoolManager = self._api_client.rest_client.pool_manager
        self._host = str(self.configuration.host).rstrip("/")
        self._discovery_lock = threading.Lock()
        self._discovery: dict[str, list[Mapping[str, Any]]] = {}

    # -- plumbing -----------------------------------------------------------

    def _headers(self, content_type: str | None = None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "cluster-discovery-operator"}
        auth = self.configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers["Authorization"] = str(auth["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = self._host + path
        if query:
            pairs = {
                k: ("true" if v is True else "false" if v is False else str(v))
                for k, v in query.items()
                if v is not None
            }
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON body (None for an empty one)."""
        data = None if body is None else json.dumps(body).encode()
        seconds = timeout or self.settings.request_timeout
        try:
            response = self._pool.request(
                method,
                self._url(path, query),
                body=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=urllib3.Timeout(connect=min(seconds, 10.0), read=seconds),
                retries=_RETRIES,
                preload_content=True,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TemporaryKubeError(f"Failed to {what}: {type(exc).__name__}: {exc}") from exc
        if response.status >= 400:
            raise error_for_status(response.status, response.data, what)
        if not response.data:
            return None
        try:
            return json.loads(response.data)
        except ValueError as exc:
            raise TemporaryKubeError(f"Failed to {what}: the server answered with invalid JSON") from exc

    # -- discovery ----------------------------------------------------------

    def _resources_of(self, group: str, version: str) -> list[Mapping[str, Any]]:
        group_version = f"{group}/{version}" if group else version
        with self._discovery_lock:
            cached = self._discovery.get(group_version)
        if cached is not None:
            return cached
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        body = self.request("GET", path, what=f"discover the kinds served under {group_version}")
        resources = [r for r in (body or {}).get("resources", []) if isinstance(r, Mapping)]
        with self._discovery_lock:
            self._discovery[group_version] = resources
        return resources

    def discover(self, group: str, version: str, kind: str, *, refresh: bool = False) -> Resource:
        """Find the plural and scope of a kind; NotFoundError names the kind when it is not served."""
        group_version = f"{group}/{version}" if group else version
        if refresh:
            with self._discovery_lock:
                self._discovery.pop(group_version, None)
        try:
            resources = self._resources_of(group, version)
        except NotFoundError:
            resources = []
        names = {str(r.get("name")) for r in resources}
        for item in resources:
            name = str(item.get("name", ""))
            if item.get("kind") == kind and "/" not in name:
                return Resource(
                    group=group,
                    version=version,
                    kind=kind,
                    plural=name,
                    namespaced=bool(item.get("namespaced")),
                    has_status=f"{name}/status" in names,
                    verbs=tuple(str(v) for v in item.get("verbs", [])),
                )
        raise NotFoundError(
            f"Failed to find kind {kind} in {group_version}: the API server does not serve it (is its CRD installed?)",
            status=404,
            reason="NotFound",
        )

    # -- objects ------------------------------------------------------------

    def list_objects(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        limit: int = 500,
    ) -> tuple[list[KubeObject], str]:
        """All objects (following ``continue`` pages) and the list's resourceVersion."""
        items: list[KubeObject] = []
        token: str | None = None
        resource_version = ""
        while True:
            query = {"limit": limit, "continue": token, "labelSelector": label_selector or None}
            body = self.request("GET", resource.path(namespace), query=query, what=f"list {resource.describe()}")
            body = body or {}
            items.extend(item for item in body.get("items", []) if isinstance(item, dict))
            meta = body.get("metadata") or {}
            resource_version = str(meta.get("resourceVersion") or resource_version)
            token = meta.get("continue") or None
            if not token:
                break
        # Items of a list carry no apiVersion/kind; roles expect the whole object as the API shows it.
        for item in items:
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return items, resource_version

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: float | None = None,
        on_response: Any = None,
    ) -> Iterator[WatchEvent]:
        """Stream watch events from ``resource_version`` until the server ends the stream.

        ``on_response(response)`` receives the open urllib3 response so another
        thread can shut it down (that is how a stop request interrupts a watch
        that is waiting for the next event).
        """
        seconds = timeout_seconds or self.settings.watch_timeout
        query = {
            "watch": True,
            "resourceVersion": resource_version or None,
            "allowWatchBookmarks": True,
            "timeoutSeconds": int(seconds),
            "labelSelector": label_selector or None,
        }
        what = f"watch {resource.describe()}"
        try:
            response = self._pool.request(
                "GET",
                self._url(resource.path(namespace), query),
                headers=self._headers(),
                timeout=urllib3.Timeout(
                    connect=min(self.settings.request_timeout, 10.0), read=seconds + self.settings.watch_read_margin
                ),
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise TemporaryKubeError(f"Failed to {what}: {type(exc).__name__}: {exc}") from exc
        complete = False
        try:
            if response.status >= 400:
                complete = True
                raise error_for_status(response.status, response.read(), what)
            if on_response is not None:
                on_response(response)
            buffer = b""
            try:
                chunks: Iterator[bytes] = (
                    response.read_chunked(decode_content=True) if response.chunked else response.stream(65536)
                )
                for chunk in chunks:
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield self._decode_event(line, what)
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                # A stream cut by shutdown() or by the network ends the same way: the caller re-lists.
                raise TemporaryKubeError(f"Failed to {what}: stream interrupted: {type(exc).__name__}: {exc}") from exc
            if buffer.strip():
                yield self._decode_event(buffer, what)
            complete = True
        finally:
            if not complete:
                # Left mid-stream (410, stop, a consumer that stopped reading): the rest of the chunked
                # body is still on the wire, so this connection must never serve another request.
                response.close()
            response.release_conn()

    @staticmethod
    def _decode_event(line: bytes, what: str) -> WatchEvent:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise TemporaryKubeError(f"Failed to {what}: undecodable watch event") from exc
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise TemporaryKubeError(f"Failed to {what}: malformed watch event {str(event)[:200]}")
        return WatchEvent(type=str(event.get("type")), object=event["object"])

    def get(self, resource: Resource, *, namespace: str | None, name: str) -> KubeObject:
        body = self.request(
            "GET",
            resource.path(namespace, name),
            what=f"get {resource.label(namespace, name)}",
        )
        return cast(KubeObject, body)

    def patch(
        self,
        resource: Resource,
        *,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        patch_type: str = "application/merge-patch+json",
        what: str = "patch",
    ) -> KubeObject:
        target = resource.label(namespace, name)
        result = self.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            body=body,
            content_type=patch_type,
            what=f"{what} {target}",
        )
        return cast(KubeObject, result)

    def create(
        self, resource: Resource, *, namespace: str | None, body: Mapping[str, Any], what: str = ""
    ) -> KubeObject:
        name = str((body.get("metadata") or {}).get("name") or (body.get("metadata") or {}).get("generateName") or "")
        result = self.request(
            "POST", resource.path(namespace), body=body, what=what or f"create {resource.kind} {namespace or ''}/{name}"
        )
        return cast(KubeObject, result)

    def replace(self, resource: Resource, *, namespace: str | None, name: str, body: Mapping[str, Any]) -> KubeObject:
        result = self.request(
            "PUT", resource.path(namespace, name), body=body, what=f"update {resource.kind} {namespace or ''}/{name}"
        )
        return cast(KubeObject, result)

    def server_version(self) -> str:
        """The API server's gitVersion (``/version``), e.g. ``v1.37.2``."""
        body = self.request("GET", "/version", what="read the API server's version")
        return str((body or {}).get("gitVersion") or "")

    def delete(self, resource: Resource, *, namespace: str | None, name: str) -> None:
        """Delete in the background (dependents go through garbage collection); NotFoundError when gone."""
        target = resource.label(namespace, name)
        self.request(
            "DELETE",
            resource.path(namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
            what=f"delete {target}",
        )

    def create_event(self, event: Event) -> KubeObject:
        namespace = event.get("metadata", {}).get("namespace") or "default"
        return self.create(EVENTS, namespace=namespace, body=cast(Mapping[str, Any], event), what="create an Event")

    def patch_event(self, *, namespace: str, name: str, body: Mapping[str, Any]) -> KubeObject:
        return self.patch(EVENTS, namespace=namespace, name=name, body=body, what="update Event")

    # -- leases -------------------------------------------------------------

    def get_lease(self, *, namespace: str, name: str) -> KubeObject:
        return self.get(LEASES, namespace=namespace, name=name)

    def create_lease(self, body: Mapping[str, Any]) -> KubeObject:
        namespace = str(body["metadata"]["namespace"])
        return self.create(
            LEASES, namespace=namespace, body=body, what=f"create Lease {namespace}/{body['metadata']['name']}"
        )

    def replace_lease(self, body: Mapping[str, Any]) -> KubeObject:
        meta = body["metadata"]
        return self.replace(LEASES, namespace=str(meta["namespace"]), name=str(meta["name"]), body=body)

    # -- reviews (for the metrics endpoint) -----------------------------------

    def token_review(self, token: str) -> Mapping[str, Any]:
        """The API server's verdict on a bearer token: {authenticated, user: {username, uid, groups, extra}}."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        result = self.request(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=body, what="review a bearer token"
        )
        status = (result or {}).get("status") or {}
        return cast(Mapping[str, Any], status)

    def subject_access_review(
        self,
        *,
        user: str,
        uid: str,
        groups: list[str],
        extra: Mapping[str, list[str]],
        path: str,
        verb: str,
    ) -> tuple[bool, str]:
        """Whether the user may ``verb`` the non-resource URL ``path``; (allowed, reason)."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "uid": uid,
                "groups": groups,
                "extra": dict(extra),
                "nonResourceAttributes": {"path": path, "verb": verb},
            },
        }
        result = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body=body,
            what=f"check whether {user} may {verb} {path}",
        )
        status = (result or {}).get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def close(self) -> None:
        try:
            self._api_client.close()
        except Exception:  # closing is best effort at shutdown
            log.debug("closing the API client failed", exc_info=True)


def pod_namespace() -> str:
    """The namespace of the pod we run in, from its service account, or "" outside a pod."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE_FILE, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""
