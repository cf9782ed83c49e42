"""Prometheus metrics, the gauges roles set, and the authenticated /metrics endpoint.

**What is exported.** operator-sdk's three (so its dashboards keep working):
``ansible_operator_build_info``, ``ansible_operator_reconcile_result{GVK,result}``
and ``ansible_operator_reconciles{GVK}`` (run duration histogram); beside them
ours, labelled by group and kind: reconciles by result (succeeded, failed,
skipped) and their duration, ansible processes started and how many objects each
carried, runs skipped, queue depth, watched objects, watch restarts by reason,
and whether this process leads. Plus whatever roles declare with
``osdk_metric`` (see below).

**Role metrics.** operator-sdk's ``osdk_metric`` module POSTs to an unauthenticated
HTTP listener in the operator. Ours needs no listener: the module returns the
metric in its result and the runner reads it from ansible-runner's event stream
(``running``), or, between runs, from the pod's other containers on a Unix
socket (``metric_requests``), then applies it here with operator-sdk's semantics (counter
increment/add, gauge set/increment/decrement/add/subtract/set_to_current_time,
histogram and summary observe), with two deliberate differences: a gauge
``set: 0`` sets 0 (Go's zero value made operator-sdk ignore it), and ``labels``
may be given, so one metric can carry a series per object (the product's
``..._peers_number{identity_name, ...}``). A metric keeps the type and label
names it was first declared with; a later request that disagrees is refused and
logged, not applied. A series labelled ``<kind>_namespace`` and ``<kind>_name``
describes that object, and goes when the object is deleted (operator-sdk keeps
it until the operator restarts, and an alert on it would never resolve).

**Who may read.** As controller-runtime's secure metrics and kube-rbac-proxy do:
HTTPS, a bearer token required (401 without one or when TokenReview does not
authenticate it), and a SubjectAccessReview for ``get`` on the non-resource URL
``/metrics`` (403 when denied), so a ServiceAccount bound to a
``metrics-reader`` ClusterRole can scrape and nobody else can. Review results
are cached per token for a minute. The certificate comes from
``--metrics-cert-dir`` (tls.crt, tls.key) or is generated, self-signed, at
start. Plain HTTP only with ``--metrics-secure=false``.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ipaddress
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    Summary,
    generate_latest,
)

from . import __version__
from .httpserver import ThreadingHTTPServer
from .kube import KubeClient, KubeError
from .logs import fields
from .settings import MetricsSettings, parse_bind_address

log = logging.getLogger(__name__)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_PREFIXES = ("ansible_operator_", "cluster_discovery_operator_", "process_")
_RUN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200)


class MetricError(ValueError):
    """A role's metric request that cannot be applied."""


class OperatorMetrics:
    """All metrics of one process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "ansible_operator_build_info",
            "Build information for the ansible-operator binary",
            ["commit", "version"],
            registry=r,
        )
        self.build_info.labels(commit="none", version=__version__).set(1)
        self.reconcile_result = Gauge(
            "ansible_operator_reconcile_result", "Gauge of reconciles and their results.", ["GVK", "result"], registry=r
        )
        self.reconcile_seconds = Histogram(
            "ansible_operator_reconciles",
            "How long in seconds a reconcile takes.",
            ["GVK"],
            registry=r,
            buckets=_RUN_BUCKETS,
        )
        self.reconciles = Counter(
            "cluster_discovery_operator_reconciles",
            "Reconciles by kind and result (succeeded, failed, skipped).",
            ["group", "kind", "result"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "cluster_discovery_operator_reconcile_duration_seconds",
            "Wall time of a reconcile, from taking the key to done, by kind and result.",
            ["group", "kind", "result"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, *_RUN_BUCKETS),
        )
        self.runs_skipped = Counter(
            "cluster_discovery_operator_runs_skipped",
            "Reconciles that started no ansible because the object's inputs had not changed.",
            ["group", "kind"],
            registry=r,
        )
        self.ansible_runs = Counter(
            "cluster_discovery_operator_ansible_runs",
            "ansible-playbook processes started, by kind.",
            ["group", "kind"],
            registry=r,
        )
        self.ansible_run_objects = Histogram(
            "cluster_discovery_operator_ansible_run_objects",
            "Objects reconciled by one ansible-playbook process.",
            ["group", "kind"],
            registry=r,
            buckets=_BATCH_BUCKETS,
        )
        self.queue_depth = Gauge(
            "cluster_discovery_operator_queue_depth",
            "Objects waiting for a worker, by kind.",
            ["group", "kind"],
            registry=r,
        )
        self.watched_objects = Gauge(
            "cluster_discovery_operator_watched_objects",
            "Objects in the watch cache, by kind.",
            ["group", "kind"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "cluster_discovery_operator_watch_restarts",
            "Watch streams restarted, by kind and reason (gone = 410, ended, error).",
            ["group", "kind", "reason"],
            registry=r,
        )
        self.leader = Gauge(
            "cluster_discovery_operator_leader",
            "1 while this process holds the leader lease (or runs without one).",
            registry=r,
        )
        # process_cpu_seconds_total, process_resident_memory_bytes, ... of this process, as Go operators expose them.
        ProcessCollector(registry=r)
        self._user_lock = threading.Lock()
        self._user: dict[str, tuple[str, tuple[str, ...], Any]] = {}
        # The label values of every series a role set, by metric name: prometheus_client lists none.
        self._user_series: dict[str, set[tuple[str, ...]]] = {}

    def watch_process(self, namespace: str, pid: Callable[[], int | None]) -> None:
        """Expose another process of the operator (the module zygote) as ``<namespace>_process_*``.

        ``pid`` is asked at each scrape; while it gives None the series are absent.
        """
        ProcessCollector(namespace=namespace, pid=lambda: pid() or "absent", registry=self.registry)

    # -- role metrics -------------------------------------------------------------

    def apply_user_metric(self, spec: Mapping[str, Any]) -> None:
        """Apply one osdk_metric request; MetricError says why it was refused."""
        name = str(spec.get("name") or "")
        if not _METRIC_NAME.fullmatch(name):
            raise MetricError(f"metric name {name!r} is not a valid Prometheus name")
        if name.startswith(_RESERVED_PREFIXES):
            raise MetricError(f"metric name {name!r} uses a prefix reserved for the operator's own metrics")
        kinds = [kind for kind in ("counter", "gauge", "histogram", "summary") if spec.get(kind) is not None]
        if len(kinds) != 1:
            raise MetricError(
                "a metric request needs exactly one of counter, gauge, histogram or summary"
                + (f", not {', '.join(kinds)}" if kinds else "")
            )
        kind = kinds[0]
        action = spec.get(kind)
        if not isinstance(action, Mapping):
            raise MetricError(f"{kind} must be a mapping")
        raw_labels = spec.get("labels") or {}
        if not isinstance(raw_labels, Mapping):
            raise MetricError("labels must be a mapping of label names to values")
        labels = {str(k): str(v) for k, v in raw_labels.items()}
        for label in labels:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise MetricError(f"label name {label!r} is not a valid Prometheus label name")
        label_names = tuple(sorted(labels))
        help_text = str(spec.get("description") or name)
        with self._user_lock:
            known = self._user.get(name)
            if known is None:
                metric = self._create(kind, name, help_text, label_names)
                self._user[name] = (kind, label_names, metric)
                log.info("registered a role metric", extra=fields(metric=name, type=kind, labels=list(label_names)))
            else:
                known_kind, known_labels, metric = known
                if known_kind != kind:
                    raise MetricError(f"cannot change metric type of {name}, which is a {known_kind}")
                if known_labels != label_names:
                    raise MetricError(f"metric {name} has labels {list(known_labels)}, not {list(label_names)}")
            series = metric.labels(**labels) if label_names else metric
            self._apply(kind, name, series, action)
            if label_names:
                self._user_series.setdefault(name, set()).add(tuple(labels[label] for label in label_names))

    def forget_object(self, kind: str, namespace: str, name: str) -> int:
        """Remove the role series that describe a deleted object; returns how many went.

        A series describes the object when it has the labels ``<kind>_namespace`` and ``<kind>_name`` (kind in
        lower case, as the product's roles label them) with the object's namespace and name.
        """
        namespace_label, name_label = f"{kind.lower()}_namespace", f"{kind.lower()}_name"
        removed = 0
        with self._user_lock:
            for metric_name, (_, label_names, metric) in self._user.items():
                if namespace_label not in label_names or name_label not in label_names:
                    continue
                at_namespace, at_name = label_names.index(namespace_label), label_names.index(name_label)
                known = self._user_series.get(metric_name, set())
                for values in [v for v in known if (v[at_namespace], v[at_name]) == (namespace, name)]:
                    metric.remove(*values)
                    known.discard(values)
                    removed += 1
        return removed

    def _create(self, kind: str, name: str, help_text: str, label_names: tuple[str, ...]) -> Any:
        cls: Any = {"counter": Counter, "gauge": Gauge, "histogram": Histogram, "summary": Summary}[kind]
        try:
            return cls(name, help_text, list(label_names), registry=self.registry)
        except ValueError as exc:
            raise MetricError(f"cannot register metric {name}: {exc}") from None

    @staticmethod
    def _apply(kind: str, name: str, series: Any, action: Mapping[str, Any]) -> None:
        def number(key: str) -> float | None:
            value = action.get(key)
            if value is None:
                return None
            try:
                return float(value)
            except (TypeError, ValueError):
                raise MetricError(f"{kind}.{key} of {name} must be a number, not {value!r}") from None

        if kind == "counter":
            add = number("add")
            if action.get("increment"):
                series.inc()
            elif add is not None:
                if add < 0:
                    raise MetricError("counter metrics cannot decrease in value")
                series.inc(add)
        elif kind == "gauge":
            if action.get("increment"):
                series.inc()
            elif action.get("decrement"):
                series.dec()
            elif (value := number("add")) is not None:
                series.inc(value)
            elif (value := number("subtract")) is not None:
                series.dec(value)
            elif (value := number("set")) is not None:
                series.set(value)
            elif action.get("set_to_current_time"):
                series.set_to_current_time()
        else:
            value = number("observe")
            if value is not None:
                series.observe(value)

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


# -- serving ------------------------------------------------------------------------


def generate_self_signed(directory: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 key and a one-year self-signed certificate for localhost and this host."""
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname()
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(hostname)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-discovery-operator-metrics")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


# Reviews of tokens not in the cache: anyone who reaches the port can send a
# new made-up token with every request, and each would cost the API server a
# TokenReview. Beyond this rate such requests get 429 without a review.
REVIEWS_PER_SECOND = 5.0
REVIEW_BURST = 20
# Requests served at once; more are refused at accept rather than given a thread each.
MAX_CONCURRENT_REQUESTS = 16


class Authorizer:
    """TokenReview + SubjectAccessReview for GET /metrics, cached per token, reviews at a bounded rate."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        ttl: float,
        path: str = "/metrics",
        verb: str = "get",
        reviews_per_second: float = REVIEWS_PER_SECOND,
        review_burst: int = REVIEW_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.ttl = ttl
        self.path = path
        self.verb = verb
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, int, str]] = {}
        self._rate = reviews_per_second
        self._burst = float(review_burst)
        self._allowance = float(review_burst)
        self._clock = clock
        self._refilled = clock()

    def _may_review(self) -> bool:
        """A token bucket: REVIEW_BURST at once, then reviews_per_second."""
        with self._lock:
            now = self._clock()
            self._allowance = min(self._burst, self._allowance + (now - self._refilled) * self._rate)
            self._refilled = now
            if self._allowance < 1:
                return False
            self._allowance -= 1
            return True

    def check(self, authorization: str | None) -> tuple[int, str]:
        """(HTTP status, message): 200 allowed, 401 unauthenticated, 403 forbidden, 503 reviews unavailable."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return 401, "Unauthorized: a bearer token is required"
        token = authorization[7:].strip()
        if not token:
            return 401, "Unauthorized: a bearer token is required"
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None and cached[0] > now:
                return cached[1], cached[2]
        if not self._may_review():
            return 429, "Too Many Requests: too many new tokens to review; try again later"
        verdict = self._review(token)
        if verdict[0] in (200, 401, 403):
            with self._lock:
                if len(self._cache) > 1024:
                    self._cache.clear()
                self._cache[digest] = (now + self.ttl, *verdict)
        return verdict

    def _review(self, token: str) -> tuple[int, str]:
        try:
            review = self.kube.token_review(token)
        except KubeError as exc:
            log.warning("token review failed", extra=fields(error=str(exc)))
            return 503, "Service Unavailable: cannot review the token"
        if not review.get("authenticated"):
            return 401, "Unauthorized"
        user = review.get("user") or {}
        username = str(user.get("username") or "")
        groups = [str(g) for g in user.get("groups") or []]
        extra = {str(k): [str(v) for v in vs] for k, vs in (user.get("extra") or {}).items()}
        try:
            allowed, reason = self.kube.subject_access_review(
                user=username,
                uid=str(user.get("uid") or ""),
                groups=groups,
                extra=extra,
                path=self.path,
                verb=self.verb,
            )
        except KubeError as exc:
            log.warning("subject access review failed", extra=fields(error=str(exc), user=username))
            return 503, "Service Unavailable: cannot authorize the request"
        if not allowed:
            detail = f" ({reason})" if reason else ""
            return 403, f"Forbidden (user={username}, verb={self.verb}, path={self.path}){detail}"
        return 200, "ok"


class _Server(ThreadingHTTPServer):
    purpose = "metrics"

    def __init__(self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the client retries, no thread is spent on it
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    """Serves /metrics (HTTPS + authorization, or plain HTTP when asked) on its own threads."""

    def __init__(self, settings: MetricsSettings, metrics: OperatorMetrics, authorizer: Authorizer | None) -> None:
        if settings.secure and authorizer is None:
            raise ValueError("a secure metrics endpoint needs an authorizer")
        self.settings = settings
        self.metrics = metrics
        self.authorizer = authorizer if settings.secure else None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.address: tuple[str, int] | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self.settings.cert_dir is not None:
            cert, key = self.settings.cert_dir / "tls.crt", self.settings.cert_dir / "tls.key"
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="cdo-metrics-cert-")
            cert, key = generate_self_signed(Path(self._tmp.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert), str(key))
        return context

    def start(self) -> tuple[str, int] | None:
        bind = parse_bind_address(self.settings.bind_address)
        if bind is None:
            return None
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 15
            server_version = "cluster-discovery-operator"

            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self._reply(404, b"not found\n", "text/plain")
                    return
                if owner.authorizer is not None:
                    code, message = owner.authorizer.check(self.headers.get("Authorization"))
                    if code != 200:
                        extra = {"WWW-Authenticate": 'Bearer realm="metrics"'} if code == 401 else {}
                        self._reply(code, (message + "\n").encode(), "text/plain", extra)
                        return
                self._reply(200, owner.metrics.exposition(), CONTENT_TYPE_LATEST)

            def _reply(
                self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics request", extra=fields(client=self.client_address[0], line=format % args))

        server = _Server(bind, Handler)
        if self.settings.secure:
            context = self._tls_context()
            # The handshake happens in the request's own thread, so a slow client cannot stall accept().
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self.address = (bind[0], server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
        self._thread.start()
        log.info(
            "serving metrics",
            extra=fields(address=f"{self.address[0]}:{self.address[1]}", secure=self.settings.secure, path="/metrics"),
        )
        return self.address

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()
