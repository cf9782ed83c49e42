"""A test-bed cluster that outlives the command starting it, for tools that bring their own steps (molecule).

``up DIR`` starts, in a background process of its own session, a control plane
(etcd, kube-apiserver, kube-controller-manager) and the kubelet stand-in (kubo
pods in podman from the kubo image built here, testbed.images), all on
loopback; it returns once the cluster answers, with its admin kubeconfig at
``DIR/kubeconfig``. ``down DIR`` sends SIGTERM to that process (the PID it
recorded in ``DIR/cluster.pid``), which stops everything it started by PID, and
waits for it. Both are idempotent: ``up`` on a running cluster and ``down`` on
none do nothing.

    python -m testbed.cluster up ~/.cache/molecule/x/testbed/cluster
    KUBECONFIG=~/.cache/molecule/x/testbed/cluster/kubeconfig kubectl get nodes
    python -m testbed.cluster down ~/.cache/molecule/x/testbed/cluster
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from testbed import images, proctree
from testbed.controlplane import control_plane_running
from testbed.kubelet import kubo_kubelet_running

READY_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0


def _recorded_pid(folder: Path) -> int | None:
    try:
        pid = int((folder / "cluster.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if proctree.alive(pid) else None


def serve(folder: Path) -> int:
    """Run the cluster until SIGTERM or SIGINT (the background process's work)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with (
        control_plane_running("testbed", base_dir=folder / "state") as cp,
        kubo_kubelet_running(cp, base_dir=folder / "state", kubo_image=images.build(["kubo"])["kubo"]) as _kubelet,
    ):
        shutil.copyfile(cp.kubeconfig, folder / "kubeconfig.partial")
        os.replace(folder / "kubeconfig.partial", folder / "kubeconfig")
        print(f"cluster: serving {cp.server}; kubeconfig {folder / 'kubeconfig'}", flush=True)
        stop.wait()
        print("cluster: stopping", flush=True)
    (folder / "kubeconfig").unlink(missing_ok=True)
    return 0


def up(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    if _recorded_pid(folder) is not None and (folder / "kubeconfig").is_file():
        print(f"cluster: already running; kubeconfig {folder / 'kubeconfig'}")
        return 0
    (folder / "kubeconfig").unlink(missing_ok=True)
    shutil.rmtree(folder / "state", ignore_errors=True)
    with (folder / "cluster.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "testbed.cluster", "serve", os.fspath(folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    (folder / "cluster.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + READY_TIMEOUT
    while not (folder / "kubeconfig").is_file():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.terminate()
            tail = (folder / "cluster.log").read_text(errors="replace").splitlines()[-30:]
            print("cluster: did not start:\n" + "\n".join(tail), file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"cluster: ready; kubeconfig {folder / 'kubeconfig'}")
    return 0


def down(folder: Path) -> int:
    pid = _recorded_pid(folder)
    if pid is None:
        # A killed run leaves its kubeconfig behind; `up` must not take it for a running cluster's.
        _forget(folder)
        print("cluster: not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while proctree.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if proctree.alive(pid):
        # Its control plane, kubelet and pods run in sessions of their own: each goes, then the process itself.
        for process in [*proctree.descendants(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGKILL)
    _forget(folder)
    print("cluster: stopped")
    return 0


def _forget(folder: Path) -> None:
    (folder / "kubeconfig").unlink(missing_ok=True)
    (folder / "cluster.pid").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "serve"])
    parser.add_argument("folder", type=Path, help="where the cluster keeps its state, kubeconfig, PID and log")
    args = parser.parse_args(argv)
    folder = args.folder.expanduser().resolve()
    if args.action == "serve":
        return serve(folder)
    return up(folder) if args.action == "up" else down(folder)


if __name__ == "__main__":
    raise SystemExit(main())
