"""Pytest fixtures over the test bed: real control planes, real kubo nodes, the kubelet stand-in.

Loaded by tests/conftest.py (``pytest_plugins = ["testbed.pytest_plugin"]``).
The fixtures are thin: the work is in testbed.controlplane, testbed.kubo and
testbed.kubelet, which the demo and the benchmarks use directly.

- ``control_plane`` (session): one shared cluster for the whole session.
- ``control_plane_factory`` (session): ``factory(name)`` starts another
  independent cluster; all stop at session end.
- ``kubo_node`` (function): ``kubo_node(swarm_key=None, *, name=None,
  bootstrap=())`` starts a kubo daemon in a private swarm; stopped at test end.
- ``kubo_kubelet`` (function): ``kubo_kubelet(cp)`` runs the kubelet stand-in
  for ``cp`` until test end (one per control plane per test).

A missing binary fails the test with the command that builds it; nothing is
skipped. The first control plane's and the first kubo node's start-up time and
memory are printed in the terminal summary.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from testbed import procs
from testbed.controlplane import ControlPlane, ControlPlanes
from testbed.kubelet import KuboKubelet, KuboKubelets
from testbed.kubo import KuboNode, KuboNodes

_figures: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    # A SIGTERM (CI cancelling the job) would end Python without running
    # fixture finalizers; turned into KeyboardInterrupt, pytest tears down and
    # every test-bed process is stopped by PID.
    procs.interrupt_on(signal.SIGTERM)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist each worker measures its own test bed; the figures go to the
    # controlling process, which prints them (the first worker's of each kind).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["testbed_figures"] = dict(_figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    for key, line in getattr(node, "workeroutput", {}).get("testbed_figures", {}).items():
        _figures.setdefault(key, line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _figures:
        terminalreporter.section("test bed")
        for line in _figures.values():
            terminalreporter.write_line(f"testbed: {line}")


class _RecordingControlPlanes(ControlPlanes):
    """Records the first control plane's start-up figures and its memory when the session ends."""

    def __call__(self, name: str, *, apiserver_args: Sequence[str] = ()) -> ControlPlane:
        cp = super().__call__(name, apiserver_args=apiserver_args)
        if cp.startup is not None and "control plane" not in _figures:
            _figures["control plane"] = cp.startup.line(name)
        return cp

    def close(self) -> None:
        if self.started:
            cp = self.started[0]
            rss = cp.rss_bytes()
            parts = ", ".join(f"{comp} {value / 2**20:.0f} MiB" for comp, value in rss.items())
            _figures["control plane at end"] = (
                f"control plane {cp.name!r} RSS at session end {sum(rss.values()) / 2**20:.0f} MiB ({parts})"
            )
        super().close()


class _RecordingKuboNodes(KuboNodes):
    def __call__(
        self, swarm_key: str | None = None, *, name: str | None = None, bootstrap: Sequence[str] = ()
    ) -> KuboNode:
        began = time.monotonic()
        node = super().__call__(swarm_key, name=name, bootstrap=bootstrap)
        if "kubo" not in _figures and node.start_seconds is not None:
            _figures["kubo"] = (
                f"kubo node ready in {time.monotonic() - began:.2f} s (ipfs init + config:"
                f" {time.monotonic() - began - node.start_seconds:.2f} s, daemon until /api/v0/id answers:"
                f" {node.start_seconds:.2f} s); RSS {node.rss_bytes() / 2**20:.0f} MiB"
            )
        return node


@pytest.fixture(scope="session")
def control_plane_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ControlPlane]]:
    """``factory(name, *, apiserver_args=())`` starts an independent control plane; all stop at session end."""
    factory = _RecordingControlPlanes(tmp_path_factory.mktemp("control-planes"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def control_plane(control_plane_factory: Callable[..., ControlPlane]) -> ControlPlane:
    """The session's shared control plane (etcd, kube-apiserver, kube-controller-manager)."""
    return control_plane_factory("testbed")


@pytest.fixture
def kubo_node(tmp_path: Path) -> Iterator[Callable[..., KuboNode]]:
    """``kubo_node(swarm_key=None, *, name=None, bootstrap=())`` starts a private kubo node, stopped at test end."""
    factory = _RecordingKuboNodes(tmp_path / "kubo")
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def kubo_kubelet(tmp_path: Path) -> Iterator[Callable[[ControlPlane], KuboKubelet]]:
    """``kubo_kubelet(cp)`` runs the kubelet stand-in for ``cp`` until test end."""
    factory = KuboKubelets(tmp_path / "kubelets")
    try:
        yield factory
    finally:
        for kubelet in factory.kubelets.values():
            # Captured output: pytest shows it only when the test failed.
            print(f"--- testbed kubelet log ({kubelet.cp.name}), {kubelet.log_path}:\n{kubelet.log_tail(60)}")
        factory.close()
