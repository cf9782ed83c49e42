"""Run the ``cluster-discovery-operator`` console script as a process, the way a Pod runs it.

Helpers for the integration tests and the benchmarks: start with JSON logs to a
file, learn the metrics and probe ports from the "serving ..." log lines,
read /readyz and /metrics, send signals, and always stop by PID.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from testbed.collection import activate

DATA = Path(__file__).resolve().parent / "data"
SCRIPT = Path(sys.executable).parent / "cluster-discovery-operator"


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.25, process: Any = None
) -> Any:
    """Poll until ``condition()`` is truthy; fail naming ``what`` (with the operator's log tail) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f"\noperator log:\n{process.tail(30)}" if process is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        if process is not None and process.returncode is not None:
            raise AssertionError(
                f"operator exited ({process.returncode}) while waiting for {what}:\n{process.tail(30)}"
            )
        time.sleep(interval)


class OperatorProcess:
    def __init__(
        self,
        *,
        kubeconfig: Path,
        watches: Path,
        namespace: str | Sequence[str],
        artifacts: Path,
        log_path: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.watches = watches
        self.namespaces = [namespace] if isinstance(namespace, str) else list(namespace)
        self.artifacts = artifacts
        self.log_path = log_path
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.probe_port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    @property
    def secure(self) -> bool:
        return "--metrics-secure=false" not in self.extra_args

    def start(self, *, wait_ports: bool = True) -> OperatorProcess:
        collections = activate()
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "WATCH_NAMESPACE")}
        env["ANSIBLE_COLLECTIONS_PATH"] = os.fspath(collections)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            os.fspath(SCRIPT),
            f"--watches-file={self.watches}",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={','.join(self.namespaces)}",
            f"--artifacts-dir={self.artifacts}",
            "--metrics-bind-address=127.0.0.1:0",
            "--health-probe-bind-address=127.0.0.1:0",
            "--log-format=json",
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.log_path.parent)
        if wait_ports:
            self.metrics_port = self._port("serving metrics")
            self.probe_port = self._port("serving health probes")
        return self

    def _port(self, message: str) -> int:
        line = wait_for(
            lambda: self.find(lambda e: e.get("msg") == message),
            timeout=60,
            what=f"the log line {message!r}",
            process=self,
        )
        return int(str(line["address"]).rsplit(":", 1)[1])

    # -- logs ---------------------------------------------------------------------

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((e for e in self.logs() if predicate(e)), None)

    def count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for e in self.logs() if predicate(e))

    def tail(self, lines: int) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- endpoints ------------------------------------------------------------------

    def _get(self, url: str, token: str | None = None) -> tuple[int, str]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), context=context, timeout=10
            ) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)

    def readyz(self) -> tuple[int, str]:
        return self._get(f"http://127.0.0.1:{self.probe_port}/readyz")

    def scrape(self, token: str | None = None) -> tuple[int, str]:
        scheme = "https" if self.secure else "http"
        return self._get(f"{scheme}://127.0.0.1:{self.metrics_port}/metrics", token)

    def metric(self, name: str, token: str | None = None, **labels: str) -> float | None:
        code, text = self.scrape(token)
        assert code == 200, f"/metrics answered {code}: {text}"
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return None

    def artifact_runs(self) -> int:
        """ansible-runner artifact folders written so far (one per ansible-playbook process)."""
        if not self.artifacts.exists():
            return 0
        return sum(1 for path in self.artifacts.rglob("artifacts/*") if path.is_dir() and (path / "command").exists())

    # -- signals --------------------------------------------------------------------

    def signal(self, number: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, number)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; the exit code."""
        assert self.proc is not None
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Stop by PID whatever state it is in (continue it first if it was stopped)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
