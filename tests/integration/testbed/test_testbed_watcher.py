"""testbed.kube.Watcher, the kubelet stand-in's list+watch loop, against the session's real API server.

Its watches last the product's five minutes, so what bounds how long a stopping
watcher lingers is :meth:`Watcher.interrupt`, not the server-side timeout; a
watch cut while running resumes from the last version it saw.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest

from testbed import procs
from testbed.controlplane import ControlPlane
from testbed.kube import WATCH_TIMEOUT_SECONDS, Watcher

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    name = f"watcher-{secrets.token_hex(3)}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def handle(self, kind: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((kind, obj["metadata"]["name"]))

    def wait_for(self, event: tuple[str, str]) -> None:
        def seen() -> bool:
            with self.lock:
                return event in self.events

        procs.wait_for(seen, timeout=10, interval=0.05, what=f"{event} among {self.events}")


def test_a_cut_watch_resumes_and_a_stopping_watcher_ends_at_once_though_its_watch_lasts_minutes(
    control_plane: ControlPlane, namespace: str
) -> None:
    assert WATCH_TIMEOUT_SECONDS >= 60, "watches last minutes: each new one costs the API server and etcd"
    api = kubernetes.client.CoreV1Api(control_plane.api_client())
    seen, stopping = Seen(), threading.Event()
    watcher = Watcher(
        "configmaps", api.list_namespaced_config_map, seen.handle, stopping, on_error=seen.errors.append,
        namespace=namespace,
    )  # fmt: skip
    watcher.start()
    assert watcher.synced.wait(10)
    control_plane.kubectl("create", "configmap", "before-the-cut", "-n", namespace)
    seen.wait_for(("ADDED", "before-the-cut"))

    watcher.interrupt()
    control_plane.kubectl("create", "configmap", "after-the-cut", "-n", namespace)
    seen.wait_for(("ADDED", "after-the-cut"))
    # Resumed from the last version seen: nothing delivered twice, nothing listed again, nothing reported.
    assert seen.events.count(("ADDED", "before-the-cut")) == 1
    assert watcher.lists == 1
    assert seen.errors == []

    began = time.monotonic()
    stopping.set()
    watcher.interrupt()
    watcher.join(timeout=10)
    assert not watcher.is_alive(), "the stopping watcher still waits on its watch"
    assert time.monotonic() - began < 5
    assert seen.errors == []
