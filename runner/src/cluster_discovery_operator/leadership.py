"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's algorithm.

Only the leader watches and reconciles; standbys poll the Lease. The timings
are client-go's and operator-sdk's defaults (lease 15 s, renew deadline 10 s,
retry 2 s), and so are the rules:

- a standby judges expiry by **its own clock**: the lease counts as held until
  ``lease_duration`` has passed since the standby last saw the record change,
  never by comparing the holder's renewTime with local time (clocks differ);
- every write carries the resourceVersion it was computed from, so two
  candidates racing for an expired lease cannot both win (one gets 409);
- the leader renews every ``retry_period``; if it cannot renew for
  ``renew_deadline`` it stops leading (and ``cli`` exits, so the pod restarts and
  no two leaders ever reconcile at once);
- on a clean stop the leader releases the lease (empty holder, 1 s duration),
  so a standby takes over at its next attempt instead of waiting for expiry.
"""

from __future__ import annotations

import datetime
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bodies import KubeObject
from .kube import ConflictError, KubeClient, KubeError, NotFoundError
from .logs import fields
from .settings import LeadershipSettings

log = logging.getLogger(__name__)


def micro_time(moment: datetime.datetime | None = None) -> str:
    """metav1.MicroTime's format."""
    moment = moment or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_identity() -> str:
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    duration: int
    acquire_time: str
    renew_time: str
    transitions: int

    @classmethod
    def from_lease(cls, lease: KubeObject) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
        )


class LeaderElector:
    """Acquire, hold and release one Lease; callbacks say when leading starts and stops."""

    def __init__(
        self,
        kube: KubeClient,
        settings: LeadershipSettings,
        *,
        namespace: str,
        on_started_leading: Callable[[], None],
        on_stopped_leading: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.namespace = namespace
        self.name = settings.lease_name
        self.identity = settings.identity or default_identity()
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.clock = clock
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._resource_version = ""
        self._leading = threading.Event()
        self._lock = threading.Lock()

    # -- state ----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def holder(self) -> str:
        with self._lock:
            return self._observed.holder if self._observed is not None else ""

    def describe(self) -> str:
        if self.is_leader:
            return f"leader of lease {self.namespace}/{self.name}"
        holder = self.holder or "nobody"
        return f"standby, waiting for lease {self.namespace}/{self.name} (held by {holder})"

    # -- one attempt -------------------------------------------------------------

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self._resource_version:
            metadata["resourceVersion"] = self._resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": record.holder,
                "leaseDurationSeconds": record.duration,
                "acquireTime": record.acquire_time,
                "renewTime": record.renew_time,
                "leaseTransitions": record.transitions,
            },
        }

    def _observe(self, lease: KubeObject) -> LeaseRecord:
        record = LeaseRecord.from_lease(lease)
        with self._lock:
            if record != self._observed:
                self._observed = record
                self._observed_at = self.clock()
            self._resource_version = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        return record

    def try_acquire_or_renew(self) -> bool:
        """client-go's tryAcquireOrRenew: True when we hold the lease after this call."""
        now = micro_time()
        duration = int(self.settings.lease_duration)
        try:
            lease = self.kube.get_lease(namespace=self.namespace, name=self.name)
        except NotFoundError:
            self._resource_version = ""
            record = LeaseRecord(self.identity, duration, now, now, 0)
            try:
                self._observe(self.kube.create_lease(self._body(record)))
            except KubeError as exc:
                log.info("could not create the lease", extra=fields(lease=self.name, error=str(exc)))
                return False
            return True
        except KubeError as exc:
            log.warning("could not read the lease", extra=fields(lease=self.name, error=str(exc)))
            return False
        current = self._observe(lease)
        held_by_other = current.holder not in ("", self.identity)
        expires = self._observed_at + max(current.duration, 1)
        if held_by_other and self.clock() < expires:
            return False
        if current.holder == self.identity:
            record = LeaseRecord(self.identity, duration, current.acquire_time or now, now, current.transitions)
        else:
            record = LeaseRecord(self.identity, duration, now, now, current.transitions + 1)
        try:
            self._observe(self.kube.replace_lease(self._body(record)))
        except ConflictError:
            return False
        except KubeError as exc:
            log.warning("could not update the lease", extra=fields(lease=self.name, error=str(exc)))
            return False
        return True

    # -- loops --------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Acquire (retrying), then renew until stopped or the renew deadline passes."""
        log.info("waiting for leadership", extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity))
        while not stop.is_set():
            if self.try_acquire_or_renew():
                break
            stop.wait(self.settings.retry_period * (1.0 + 0.2 * random.random()))
        if stop.is_set():
            return
        self._leading.set()
        log.info("became the leader", extra=fields(lease=f"{self.namespace}/{self.name}", identity=self.identity))
        self.on_started_leading()
        last_renewal = self.clock()
        while not stop.wait(self.settings.retry_period):
            if self.try_acquire_or_renew():
                last_renewal = self.clock()
                continue
            if self.clock() - last_renewal >= self.settings.renew_deadline:
                self._leading.clear()
                log.error(
                    "lost leadership: the lease could not be renewed in time",
                    extra=fields(lease=f"{self.namespace}/{self.name}", deadline=self.settings.renew_deadline),
                )
                self.on_stopped_leading()
                return

    def release(self) -> None:
        """Give the lease up (only if we hold it), so a standby takes over at once."""
        if not self._leading.is_set():
            return
        self._leading.clear()
        try:
            lease = self.kube.get_lease(namespace=self.namespace, name=self.name)
            current = self._observe(lease)
            if current.holder != self.identity:
                return
            now = micro_time()
            self.kube.replace_lease(self._body(LeaseRecord("", 1, now, now, current.transitions)))
            log.info("released the lease", extra=fields(lease=f"{self.namespace}/{self.name}"))
        except KubeError as exc:
            log.warning("could not release the lease", extra=fields(lease=self.name, error=str(exc)))
