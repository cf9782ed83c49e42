"""Settings: grouped, typed, documented where they are declared.

As in kopf's ``configuration.py``, each concern gets a small frozen dataclass
whose attributes carry their own docstrings; ``cli`` fills them from flags and
the environment, and every other module receives only the group it needs. The
defaults are operator-sdk's where operator-sdk has one (lease 15 s / renew 10 s /
retry 2 s, verbosity 2, NumCPU workers), so a manifest written for it behaves the
same; the others are explained in place.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def parse_bind_address(address: str) -> tuple[str, int] | None:
    """``host:port`` or ``:port`` (all interfaces) as (host, port); "0" or "" disables. ValueError when malformed."""
    if address in ("0", ""):
        return None
    host, separator, port = address.rpartition(":")
    if not separator:
        raise ValueError(f"{address!r} is not host:port")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host.strip("[]") or "0.0.0.0", number


def _cpu_count() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class KubeSettings:
    """How to reach the API server."""

    kubeconfig: str | None = None
    """Path of a kubeconfig; None means $KUBECONFIG, ~/.kube/config, then the in-cluster service account."""

    context: str | None = None
    """Kubeconfig context; None means the current one."""

    request_timeout: float = 30.0
    """Seconds for any non-watch request (connect and read), so a hung API server never blocks a worker."""

    watch_timeout: float = 300.0
    """Server-side timeoutSeconds of a watch; the stream then ends and the watcher re-lists (the issue's rule)."""

    watch_read_margin: float = 30.0
    """Extra client-side read timeout beyond watch_timeout before a silent stream is declared dead."""


@dataclass(frozen=True)
class QueueingSettings:
    """The per-kind work queue and its workers."""

    max_concurrent_reconciles: int = field(default_factory=_cpu_count)
    """Workers per watched kind (operator-sdk's --max-concurrent-reconciles, default NumCPU);
    MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP> overrides it per kind."""

    max_batch_size: int = 40
    """Objects of one kind whose ansible runs may share one ansible-playbook process (one inventory host each).
    1 gives operator-sdk's exact one-process-per-object behaviour. Each process pays its start, the roles' and
    plugins' imports once: measured on 2 CPUs, 300 new objects took 102-105 s with 20, 85.5 s with 40 and 89.6 s
    with 60 or 100."""

    min_reconcile_period: float = 60.0
    """Shortest period the ``ansible.sdk.operatorframework.io/reconcile-period`` annotation may ask for; a shorter
    one is raised to it. Whoever may edit an object may annotate it, and operator-sdk takes the annotation as
    written: ``1ms`` had the operator, shared by every namespace, run that object's role back to back. The
    watch's own ``reconcilePeriod`` and a role's ``requeue_after`` are the operator author's and are not bounded.
    0 takes the annotation as written, as operator-sdk does."""

    batch_window: float = 0.2
    """Seconds a worker that must start ansible waits for more ready objects of its kind to share the process.
    Negligible next to ansible's own start-up (about a second), and only paid when ansible runs at all."""

    backoff_base: float = 1.0
    """First retry delay after a failed reconcile, in seconds."""

    backoff_factor: float = 2.0
    """Each further consecutive failure multiplies the delay by this."""

    backoff_max: float = 300.0
    """Ceiling of the retry delay: a broken object is still retried every five minutes."""


@dataclass(frozen=True)
class RunningSettings:
    """How ansible-runner is invoked."""

    artifacts_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "cluster-discovery-operator"
    )
    """Root of the private_data_dirs the runner owns (one per object, one per batch slot); never the repository."""

    ansible_verbosity: int = 2
    """Default -v level (operator-sdk's --ansible-verbosity default); ANSIBLE_VERBOSITY_<KIND>_<GROUP> and the
    ansible.sdk.operatorframework.io/verbosity annotation override it."""

    run_timeout: float = 0.0
    """Seconds after which an ansible run is cancelled and counted as failed; 0 disables (operator-sdk has none)."""

    python_interpreter: str = ""
    """ansible_python_interpreter for localhost; empty means the runner's own interpreter (sys.executable)."""

    ansible_args: tuple[str, ...] = ()
    """Extra ansible-playbook arguments (operator-sdk's --ansible-args)."""

    module_zygote: bool = True
    """Run modules in processes forked from a Python that imported ansible's and kubernetes.core's module code
    once (zygote.py), instead of a new Python per module: same results, a fraction of the CPU."""

    playbook_zygote: bool = True
    """Run each ansible-playbook in a process forked from a Python that imported ansible-playbook's code once
    (zygote.py, "Playbooks"), when the run's ansible settings are those it imported with; a new
    ansible-playbook process otherwise."""

    playbook_zygote_release_after: float = 10.0
    """Seconds without a run after which the playbook zygote gives back the memory of ansible's imports (about
    55 MiB) until the next run imports them again (zygote.py, "Idle"); 0 keeps them. Runs of a burst follow each
    other within that time; periodic reconciles minutes apart each import ansible, as a new process would."""

    skip_in_strategy: bool = True
    """Run plays with the cdo_linear strategy (ansible_plugins/strategy): linear, except that a task whose
    ``when`` is false is reported skipped without forking a worker; False (or ANSIBLE_STRATEGY set in the
    environment) leaves ansible's own choice."""

    max_forks: int = 4
    """Hosts (objects) one ansible-playbook process works on at a time when several share it. Memory grows with
    it (each concurrent module is a Python process, ~70 MB for a kubernetes.core one) while throughput does not
    beyond a few per CPU: measured on 2 CPUs, 20 objects took 23.5 s with 20 forks, 23.1 s with 8, 24.7 s with 4."""


@dataclass(frozen=True)
class MetricsSettings:
    """The /metrics endpoint."""

    bind_address: str = "0.0.0.0:8443"
    """host:port; "0" disables the endpoint (controller-runtime's convention)."""

    secure: bool = True
    """HTTPS with TokenReview + SubjectAccessReview; False serves plain HTTP to anyone and must be asked for."""

    cert_dir: Path | None = None
    """Folder with tls.crt and tls.key; None generates a self-signed certificate at start."""

    auth_cache_ttl: float = 60.0
    """Seconds a token's review result is reused, so a scrape every few seconds costs no API calls."""

    role_metrics_socket: Path | None = None
    """A Unix socket on which the pod's other containers set role metrics between runs (metric_requests); None
    listens on none."""


@dataclass(frozen=True)
class ProbeSettings:
    """/healthz and /readyz."""

    bind_address: str = "0.0.0.0:8081"
    """host:port of the plain-HTTP probe server; "0" disables it."""


@dataclass(frozen=True)
class LeadershipSettings:
    """Leader election on a coordination.k8s.io/v1 Lease (client-go's defaults)."""

    enabled: bool = False
    """--leader-elect."""

    lease_name: str = "cluster-discovery-operator"
    """--leader-election-id: the Lease's name."""

    namespace: str = ""
    """Namespace of the Lease; empty means the pod's own namespace (from the service account), else an error."""

    identity: str = ""
    """holderIdentity; empty means <hostname>_<random>."""

    lease_duration: float = 15.0
    """Seconds a standby waits after the last observed renewal before taking over."""

    renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew before it gives up leadership (and exits)."""

    retry_period: float = 2.0
    """Seconds between attempts, for the leader and for standbys."""


@dataclass(frozen=True)
class ShutdownSettings:
    """What SIGTERM does."""

    grace_timeout: float = 25.0
    """Seconds running reconciles get to finish; then their ansible is cancelled and they are left for the next
    process (a pod's default terminationGracePeriodSeconds is 30)."""


@dataclass(frozen=True)
class Settings:
    """Everything, grouped."""

    watches_file: Path = Path("watches.yaml")
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all (WATCH_NAMESPACE, comma separated, as operator-sdk)."""
    kube: KubeSettings = field(default_factory=KubeSettings)
    queueing: QueueingSettings = field(default_factory=QueueingSettings)
    running: RunningSettings = field(default_factory=RunningSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    leadership: LeadershipSettings = field(default_factory=LeadershipSettings)
    shutdown: ShutdownSettings = field(default_factory=ShutdownSettings)
