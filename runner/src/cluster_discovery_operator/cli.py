"""The ``cluster-discovery-operator`` console script: flags, wiring, signals, shutdown.

Flag names and defaults follow operator-sdk's ansible-operator
(``internal/ansible/flags``) where it has the flag, so a manager Deployment
written for it needs no change: ``--watches-file ./watches.yaml``,
``--max-concurrent-reconciles`` (NumCPU), ``--ansible-verbosity 2``,
``--ansible-args``, ``--metrics-bind-address :8443``,
``--health-probe-bind-address :6789``, ``--leader-elect``,
``--leader-election-id``, ``--leader-election-namespace``,
``--leader-elect-lease-duration 15s``, ``--leader-elect-renew-deadline 10s``,
``--graceful-shutdown-timeout``. The namespaces come from ``--namespace`` or
``WATCH_NAMESPACE`` (comma separated; empty means all). Ours:
``--max-batch-size``, ``--batch-window``, ``--max-forks``, ``--min-reconcile-period``, ``--reconcile-backoff-base`` and
``--reconcile-backoff-max``, ``--artifacts-dir``,
``--metrics-secure`` / ``--metrics-cert-dir``, ``--role-metrics-socket``, ``--kubeconfig``/``--context``,
``--log-format``, ``--ansible-run-timeout``.

Start-up validates everything before touching the cluster (watches.yaml,
flags, kubeconfig, the watched kinds being served) and exits 2 with one clear
line on bad input. SIGTERM or SIGINT: readiness goes false, no new reconcile
starts, running ones get the grace period (then their ansible is cancelled),
the lease is released and the process exits 0. Losing the lease exits 1, so the
pod restarts rather than risking two leaders.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from . import __version__
from .durations import DurationError, parse_duration
from .kube import ConfigurationError, KubeClient, KubeError, pod_namespace
from .leadership import LeaderElector, default_identity
from .logs import configure, fields
from .metric_requests import MetricRequests
from .metrics import Authorizer, MetricsServer, OperatorMetrics
from .probes import ProbeServer
from .reconciling import Manager, discover_resources
from .running import AnsibleRunner
from .settings import (
    KubeSettings,
    LeadershipSettings,
    MetricsSettings,
    ProbeSettings,
    QueueingSettings,
    RunningSettings,
    Settings,
    ShutdownSettings,
    parse_bind_address,
)
from .watches import WatchesError, load

log = logging.getLogger("cluster_discovery_operator")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad flags or environment: reported as one line, exit code 2."""


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _duration(text: str) -> float:
    try:
        value = parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, not {value}")
    return value


def _address(text: str) -> str:
    try:
        parse_bind_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected host:port, :port or 0, not {text!r}") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cluster-discovery-operator",
        description="Reconcile the custom resources listed in watches.yaml with their Ansible roles "
        "(operator-sdk's Ansible-operator contract).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--watches-file", type=Path, default=Path("./watches.yaml"), help="watches.yaml to load")
    p.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="namespace to watch (repeat or comma-separate; default: $WATCH_NAMESPACE, empty = all)",
    )
    p.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    p.add_argument("--context", default=None, help="kubeconfig context")
    g = p.add_argument_group("reconciling")
    g.add_argument(
        "--max-concurrent-reconciles",
        type=_positive_int,
        default=os.cpu_count() or 1,
        help="workers per kind (default: number of CPUs); MAX_CONCURRENT_RECONCILES_<KIND>_<GROUP> overrides",
    )
    g.add_argument(
        "--max-batch-size",
        type=_positive_int,
        default=QueueingSettings.max_batch_size,
        help="objects of one kind that may share one ansible-playbook process (1 = one process per object)",
    )
    g.add_argument(
        "--batch-window",
        type=_duration,
        default=QueueingSettings.batch_window,
        help="how long a worker that must start ansible waits for more ready objects (Go duration)",
    )
    g.add_argument(
        "--max-forks",
        type=_positive_int,
        default=RunningSettings.max_forks,
        help="objects one shared ansible-playbook process works on at a time (bounds its memory)",
    )
    g.add_argument(
        "--module-zygote",
        type=_bool,
        default=RunningSettings.module_zygote,
        help="run modules in processes forked from a Python that preloaded their imports (true|false; default true)",
    )
    g.add_argument(
        "--playbook-zygote",
        type=_bool,
        default=RunningSettings.playbook_zygote,
        help="run ansible-playbook in processes forked from a Python that preloaded its imports (true|false; "
        "default true)",
    )
    g.add_argument(
        "--playbook-zygote-release-after",
        type=_duration,
        default=RunningSettings.playbook_zygote_release_after,
        help="how long the playbook zygote keeps ansible's imports (about 55 MiB) without a run (Go duration; "
        "0 keeps them; default 10s)",
    )
    g.add_argument(
        "--skip-in-strategy",
        type=_bool,
        default=RunningSettings.skip_in_strategy,
        help="report a false `when` without forking a worker (the cdo_linear strategy; true|false; default true)",
    )
    g.add_argument(
        "--min-reconcile-period",
        type=_duration,
        default=QueueingSettings.min_reconcile_period,
        help="shortest period an object's reconcile-period annotation may ask for (Go duration; 0 = any)",
    )
    g.add_argument(
        "--reconcile-backoff-base",
        type=_duration,
        default=QueueingSettings.backoff_base,
        help="first retry delay after a failed reconcile; doubles on each further failure (Go duration)",
    )
    g.add_argument(
        "--reconcile-backoff-max",
        type=_duration,
        default=QueueingSettings.backoff_max,
        help="longest retry delay after failures (Go duration)",
    )
    g.add_argument(
        "--ansible-verbosity",
        type=int,
        default=RunningSettings.ansible_verbosity,
        choices=range(0, 8),
        metavar="0-7",
        help="ansible -v level; ANSIBLE_VERBOSITY_<KIND>_<GROUP> overrides",
    )
    g.add_argument("--ansible-args", default="", help="extra ansible-playbook arguments")
    g.add_argument(
        "--ansible-run-timeout",
        type=_duration,
        default=0.0,
        help="cancel an ansible run after this long (Go duration; 0 = never)",
    )
    g.add_argument(
        "--artifacts-dir",
        type=Path,
        default=None,
        help="root of the runner's private_data_dirs (default: $TMPDIR/cluster-discovery-operator)",
    )
    g.add_argument("--ansible-roles-path", default="", help="sets ANSIBLE_ROLES_PATH for role lookup and runs")
    g.add_argument("--ansible-collections-path", default="", help="sets ANSIBLE_COLLECTIONS_PATH for lookup and runs")
    g.add_argument(
        "--watch-timeout",
        type=_duration,
        default=KubeSettings.watch_timeout,
        help="server-side timeout of a watch stream before it is listed again (Go duration)",
    )
    g.add_argument(
        "--graceful-shutdown-timeout",
        type=_duration,
        default=ShutdownSettings.grace_timeout,
        help="how long running reconciles may take to finish on SIGTERM (Go duration)",
    )
    g = p.add_argument_group("serving")
    g.add_argument("--metrics-bind-address", type=_address, default=":8443", help="metrics host:port (0 disables)")
    g.add_argument(
        "--metrics-secure",
        type=_bool,
        default=True,
        metavar="true|false",
        help="serve /metrics over HTTPS to callers authorized by TokenReview + SubjectAccessReview "
        "(false: plain HTTP, no authorization)",
    )
    g.add_argument(
        "--metrics-cert-dir", type=Path, default=None, help="folder with tls.crt and tls.key (default: self-signed)"
    )
    g.add_argument(
        "--role-metrics-socket",
        type=Path,
        default=None,
        help="Unix socket (made mode 0600) on which the pod's other containers, the discovery agent, set role metrics"
        " between runs, one osdk_metric request per line (default: none)",
    )
    g.add_argument("--health-probe-bind-address", type=_address, default=":6789", help="probes host:port (0 disables)")
    g = p.add_argument_group("leader election")
    g.add_argument("--leader-elect", action="store_true", help="elect a leader on a Lease before reconciling")
    g.add_argument("--leader-election-id", default=LeadershipSettings.lease_name, help="name of the Lease")
    g.add_argument("--leader-election-namespace", default="", help="namespace of the Lease (default: the pod's)")
    g.add_argument("--leader-elect-lease-duration", type=_duration, default=LeadershipSettings.lease_duration)
    g.add_argument("--leader-elect-renew-deadline", type=_duration, default=LeadershipSettings.renew_deadline)
    g.add_argument("--leader-elect-retry-period", type=_duration, default=LeadershipSettings.retry_period)
    g = p.add_argument_group("logging")
    g.add_argument("--log-format", choices=("json", "keyvalue"), default="json")
    g.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    raw_namespaces = args.namespace if args.namespace is not None else [os.environ.get("WATCH_NAMESPACE", "")]
    namespaces = tuple(dict.fromkeys(n.strip() for item in raw_namespaces for n in item.split(",") if n.strip()))
    if args.leader_elect_renew_deadline >= args.leader_elect_lease_duration:
        raise UsageError("--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration")
    if args.metrics_cert_dir is not None:
        for name in ("tls.crt", "tls.key"):
            if not (args.metrics_cert_dir / name).is_file():
                raise UsageError(f"--metrics-cert-dir {args.metrics_cert_dir} has no {name}")
    running = RunningSettings(
        max_forks=args.max_forks,
        module_zygote=args.module_zygote,
        playbook_zygote=args.playbook_zygote,
        playbook_zygote_release_after=args.playbook_zygote_release_after,
        skip_in_strategy=args.skip_in_strategy,
        ansible_verbosity=args.ansible_verbosity,
        run_timeout=args.ansible_run_timeout,
        ansible_args=tuple(args.ansible_args.split()) if args.ansible_args else (),
    )
    if args.artifacts_dir is not None:
        running = replace(running, artifacts_dir=args.artifacts_dir.resolve())
    return Settings(
        watches_file=args.watches_file,
        namespaces=namespaces,
        kube=KubeSettings(kubeconfig=args.kubeconfig, context=args.context, watch_timeout=max(args.watch_timeout, 1.0)),
        queueing=QueueingSettings(
            max_concurrent_reconciles=args.max_concurrent_reconciles,
            max_batch_size=args.max_batch_size,
            batch_window=args.batch_window,
            min_reconcile_period=args.min_reconcile_period,
            backoff_base=max(args.reconcile_backoff_base, 0.001),
            backoff_max=max(args.reconcile_backoff_max, args.reconcile_backoff_base),
        ),
        running=running,
        metrics=MetricsSettings(
            bind_address=args.metrics_bind_address,
            secure=args.metrics_secure,
            cert_dir=args.metrics_cert_dir,
            role_metrics_socket=args.role_metrics_socket,
        ),
        probes=ProbeSettings(bind_address=args.health_probe_bind_address),
        leadership=LeadershipSettings(
            enabled=args.leader_elect,
            lease_name=args.leader_election_id,
            namespace=args.leader_election_namespace,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
        ),
        shutdown=ShutdownSettings(grace_timeout=args.graceful_shutdown_timeout),
    )


def run(settings: Settings, *, stop: threading.Event) -> int:
    """Run until ``stop`` is set; return the exit code."""
    try:
        watches = load(
            settings.watches_file,
            default_workers=settings.queueing.max_concurrent_reconciles,
            default_verbosity=settings.running.ansible_verbosity,
        )
    except WatchesError as exc:
        log.error("invalid watches file", extra=fields(error=str(exc)))
        return EXIT_USAGE
    try:
        kube = KubeClient(settings.kube)
    except ConfigurationError as exc:
        log.error("no Kubernetes configuration", extra=fields(error=str(exc)))
        return EXIT_USAGE
    lease_namespace = settings.leadership.namespace or pod_namespace()
    if settings.leadership.enabled and not lease_namespace:
        log.error("leader election needs --leader-election-namespace when not running in a pod")
        return EXIT_USAGE
    try:
        resources = discover_resources(kube, watches)
    except KubeError as exc:
        log.error("cannot serve the watched kinds", extra=fields(error=str(exc)))
        return EXIT_FAILURE
    identity = settings.leadership.identity or default_identity()
    metrics = OperatorMetrics()
    try:
        runner = AnsibleRunner(settings.running, settings.kube)
    except RuntimeError as exc:  # the module zygote did not start
        log.error("cannot start the ansible runner", extra=fields(error=str(exc)))
        return EXIT_FAILURE
    metrics.watch_process("cluster_discovery_operator_zygote", lambda: runner.zygote_pid)
    metrics.watch_process("cluster_discovery_operator_playbook_zygote", lambda: runner.playbook_zygote_pid)
    manager = Manager(
        watches=watches,
        resources=resources,
        kube=kube,
        runner=runner,
        metrics=metrics,
        settings=settings,
        identity=identity,
    )
    stopping = threading.Event()
    lost = threading.Event()
    elector: LeaderElector | None = None

    def on_started_leading() -> None:
        metrics.leader.set(1)
        manager.start()

    def on_stopped_leading() -> None:
        metrics.leader.set(0)
        lost.set()
        stop.set()

    if settings.leadership.enabled:
        elector = LeaderElector(
            kube,
            replace(settings.leadership, identity=identity),
            namespace=lease_namespace,
            on_started_leading=on_started_leading,
            on_stopped_leading=on_stopped_leading,
        )

    def readiness() -> tuple[bool, str]:
        if stopping.is_set():
            return False, "shutting down"
        if elector is not None and not elector.is_leader:
            return True, f"ok: {elector.describe()}"
        if manager.synced():
            return True, "ok: leader, watches synced" if elector is not None else "ok: watches synced"
        return False, "watches not synced yet"

    authorizer = Authorizer(kube, ttl=settings.metrics.auth_cache_ttl) if settings.metrics.secure else None
    metrics_server = MetricsServer(settings.metrics, metrics, authorizer)
    requests = (
        MetricRequests(settings.metrics.role_metrics_socket, metrics, unknown_object=manager.unknown_object)
        if settings.metrics.role_metrics_socket is not None
        else None
    )
    probe_server = ProbeServer(settings.probes, readiness)
    try:
        metrics_server.start()
        if requests is not None:
            requests.start()
        probe_server.start()
    except OSError as exc:
        log.error("cannot listen", extra=fields(error=str(exc)))
        metrics_server.stop()
        if requests is not None:
            requests.stop()
        runner.close()
        return EXIT_USAGE
    log.info(
        "started",
        extra=fields(
            version=__version__,
            kinds=[str(w.gvk) for w in watches],
            namespaces=list(settings.namespaces) or "all",
            leader_election=settings.leadership.enabled,
            identity=identity,
            artifacts=str(settings.running.artifacts_dir),
        ),
    )
    elector_thread: threading.Thread | None = None
    elector_stop = threading.Event()
    if elector is not None:
        elector_thread = threading.Thread(target=elector.run, args=(elector_stop,), name="leader-election", daemon=True)
        elector_thread.start()
    else:
        on_started_leading()
    while not stop.wait(0.5):
        pass
    stopping.set()
    log.info(
        "stopping: no new reconciles; waiting for running ones", extra=fields(grace=settings.shutdown.grace_timeout)
    )
    began = time.monotonic()
    finished = manager.stop(settings.shutdown.grace_timeout) if manager.started.is_set() else True
    elector_stop.set()
    if elector_thread is not None:
        elector_thread.join(timeout=5.0)
    if elector is not None:
        elector.release()
    metrics_server.stop()
    if requests is not None:
        requests.stop()
    probe_server.stop()
    runner.close()
    kube.close()
    code = EXIT_FAILURE if lost.is_set() else EXIT_OK
    log.info(
        "stopped",
        extra=fields(seconds=round(time.monotonic() - began, 3), all_runs_finished=finished, exit_code=code),
    )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(level=args.log_level, fmt=args.log_format)
    if args.ansible_roles_path:
        os.environ["ANSIBLE_ROLES_PATH"] = args.ansible_roles_path
    if args.ansible_collections_path:
        os.environ["ANSIBLE_COLLECTIONS_PATH"] = args.ansible_collections_path
    try:
        settings = settings_from(args)
    except UsageError as exc:
        log.error("invalid flags", extra=fields(error=str(exc)))
        return EXIT_USAGE
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        log.info("received a signal", extra=fields(signal=signal.Signals(number).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return run(settings, stop=stop)


if __name__ == "__main__":
    sys.exit(main())
