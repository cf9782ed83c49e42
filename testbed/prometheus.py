"""A real Prometheus on loopback, scraping the product as a ServiceMonitor makes it scrape.

prometheus is built from its Go module by testbed/build.py. :class:`Prometheus`
writes a prometheus.yml with one scrape job per target set, each as the
Prometheus Operator renders a ServiceMonitor endpoint of the chart: HTTPS with
the manager's self-signed certificate accepted, and a bearer token (of a
ServiceAccount bound to ``metrics-reader``) read from a file, so Prometheus is
let in by the same TokenReview and SubjectAccessReview as any user. The job
label is ``cluster-discovery``, what the chart's ServiceMonitor sets
(``jobLabel: app.kubernetes.io/part-of``); each cluster's target carries a
``cluster`` label. Rule files are loaded as given.

Scrape and rule evaluation run every second by default, so tests see alerts in
seconds rather than minutes; the rules' own ``for`` durations are whatever the
files say.

    with prometheus_running(base_dir, rule_files=[rules]) as prom:
        prom.set_targets({"cluster1": MetricsTarget("127.0.0.5:8443", token)})
        prom.query('up{job="cluster-discovery"}')
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from testbed import binaries
from testbed.ports import free_port
from testbed.procs import ManagedProcess

JOB = "cluster-discovery"
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class MetricsTarget:
    """One operator's metrics endpoint (``host:port``, HTTPS) and the bearer token Prometheus presents."""

    address: str
    token: str


class Prometheus:
    def __init__(
        self, base_dir: Path, *, rule_files: Sequence[Path] = (), interval: str = "1s", name: str = "prometheus"
    ) -> None:
        self.base_dir = base_dir
        self.rule_files = list(rule_files)
        self.interval = interval
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = base_dir / "prometheus.yml"
        self.process = ManagedProcess(
            [
                binaries.prometheus("prometheus"),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                # Series of a restarted target go stale at once; alerts resolve as soon as their series say so.
                "--query.lookback-delta=30s",
            ],
            name=name,
            log_path=base_dir / "prometheus.log",
        )
        self._targets: dict[str, MetricsTarget] = {}

    # -- life ------------------------------------------------------------------

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.process.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"prometheus exited at start; log {self.process.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready within {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.process.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- configuration ----------------------------------------------------------

    def set_targets(self, targets: Mapping[str, MetricsTarget]) -> None:
        """Scrape these operators (cluster name -> endpoint), and only these; reloads the configuration."""
        self._targets = dict(targets)
        self._write_config()
        if self.process.alive():
            reply = requests.post(f"{self.url}/-/reload", timeout=30)
            if reply.status_code != 200:
                raise RuntimeError(f"prometheus refused the new configuration: {reply.text}")

    def _write_config(self) -> None:
        tokens = self.base_dir / "tokens"
        tokens.mkdir(parents=True, exist_ok=True)
        scrape: list[dict[str, Any]] = []
        for cluster, target in sorted(self._targets.items()):
            token_file = tokens / cluster
            token_file.write_text(target.token)
            token_file.chmod(0o600)
            scrape.append(
                {
                    # One job name for all, as the ServiceMonitor's jobLabel makes it; the cluster tells them apart.
                    "job_name": f"{JOB}-{cluster}",
                    "scheme": "https",
                    "metrics_path": "/metrics",
                    "tls_config": {"insecure_skip_verify": True},
                    "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                    "static_configs": [{"targets": [target.address], "labels": {"cluster": cluster}}],
                    "relabel_configs": [{"target_label": "job", "replacement": JOB}],
                }
            )
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(path) for path in self.rule_files],
            "scrape_configs": scrape,
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    # -- API ----------------------------------------------------------------------

    def _api(self, path: str, **params: str) -> Any:
        reply = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=30)
        body = reply.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {body.get('error') or reply.text}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        data = self._api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (labels, annotations, state, activeAt)."""
        alerts: list[dict[str, Any]] = self._api("alerts")["alerts"]
        return alerts

    def targets(self) -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = self._api("targets")["activeTargets"]
        return active


@contextlib.contextmanager
def prometheus_running(
    base_dir: Path, *, rule_files: Sequence[Path] = (), interval: str = "1s"
) -> Iterator[Prometheus]:
    prometheus = Prometheus(base_dir, rule_files=rule_files, interval=interval)
    prometheus.start()
    try:
        yield prometheus
    finally:
        prometheus.stop()
