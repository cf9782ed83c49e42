"""The informer: list, watch, and the re-list that loses nothing (410 Gone, stream end, errors).

A scripted API stands in for the server so that every path is exercised
deterministically: the first list reports everything as ADDED; watch events
update the cache; bookmarks move the resourceVersion only; a 410 (as an ERROR
event or as the watch's HTTP status), the end of a stream and other errors all
lead to a re-list whose diff against the cache reports what was missed as
ADDED/MODIFIED/DELETED, collapsed to the latest state. Against a real API
server (with etcd compaction) in tests/integration/runner.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from cluster_discovery_operator.kube import GoneError, Resource, TemporaryKubeError
from cluster_discovery_operator.settings import KubeSettings
from cluster_discovery_operator.watching import Informer

RESOURCE = Resource(group="x.io", version="v1", kind="Widget", plural="widgets", namespaced=True)


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


class ScriptedKube:
    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[list[Any]]) -> None:
        self.lists = deque(lists)
        self.watches = deque(watches)
        self.watch_from: list[str] = []
        self.stop = threading.Event()

    def list_objects(self, resource: Resource, **_: Any) -> tuple[list[dict[str, Any]], str]:
        if not self.lists:
            self.stop.set()
            raise TemporaryKubeError("script over")
        return self.lists.popleft()

    def watch(self, resource: Resource, *, resource_version: str, **_: Any) -> Iterator[dict[str, Any]]:
        self.watch_from.append(resource_version)
        script = self.watches.popleft() if self.watches else []
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step


def run(kube: ScriptedKube) -> tuple[Informer, list[tuple[str, str, str]], list[str]]:
    seen: list[tuple[str, str, str]] = []
    restarts: list[str] = []
    informer = Informer(
        kube,  # type: ignore[arg-type]
        RESOURCE,
        settings=KubeSettings(),
        handler=lambda kind, o, old: seen.append((kind, o["metadata"]["name"], o["metadata"]["resourceVersion"])),
        on_restart=restarts.append,
    )
    informer.run(kube.stop)
    return informer, seen, restarts


def test_first_list_reports_everything_added_then_watch_events_apply() -> None:
    kube = ScriptedKube(
        lists=[([obj("a", "1"), obj("b", "2")], "2")],
        watches=[
            [
                {"type": "MODIFIED", "object": obj("a", "3")},
                {"type": "DELETED", "object": obj("b", "4")},
                {"type": "ADDED", "object": obj("c", "5")},
                {"type": "BOOKMARK", "object": obj("", "9")},
            ]
        ],
    )
    informer, seen, restarts = run(kube)
    assert seen == [
        ("ADDED", "a", "1"),
        ("ADDED", "b", "2"),
        ("MODIFIED", "a", "3"),
        ("DELETED", "b", "2"),
        ("ADDED", "c", "5"),
    ]
    assert kube.watch_from == ["2"]
    assert informer.resource_version == "9", "a bookmark moves the resourceVersion"
    assert restarts[0] == "ended"


def test_410_in_the_stream_relists_and_reports_what_was_missed() -> None:
    """While no watch delivered events: a changed, b deleted, c created. The re-list reports exactly that."""
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}
    kube = ScriptedKube(
        lists=[
            ([obj("a", "1"), obj("b", "2"), obj("d", "3")], "3"),
            ([obj("a", "7"), obj("c", "8"), obj("d", "3")], "8"),
        ],
        watches=[[gone]],
    )
    informer, seen, restarts = run(kube)
    assert seen[3:] == [("MODIFIED", "a", "7"), ("ADDED", "c", "8"), ("DELETED", "b", "2")]
    assert restarts[0] == "gone"
    assert sorted(informer.keys()) == ["ns/a", "ns/c", "ns/d"]
    assert ("MODIFIED", "d", "3") not in seen, "an unchanged object produces no event"


def test_410_as_http_status_relists_and_other_errors_resume_from_the_last_version() -> None:
    """A 410 answer means list again; a cut connection resumes watching where it was, without a list."""
    kube = ScriptedKube(
        lists=[([obj("a", "1")], "1"), ([obj("a", "2")], "2")],
        watches=[
            [GoneError("410 Gone", status=410)],
            [{"type": "MODIFIED", "object": obj("a", "3")}, TemporaryKubeError("connection reset")],
            [{"type": "MODIFIED", "object": obj("a", "4")}],
        ],
    )
    _, seen, restarts = run(kube)
    assert seen == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("MODIFIED", "a", "3"), ("MODIFIED", "a", "4")]
    assert restarts[:3] == ["gone", "error", "ended"]
    assert kube.watch_from[:3] == ["1", "2", "3"], "after the error, the watch resumed from version 3"


def test_unknown_event_types_are_skipped() -> None:
    kube = ScriptedKube(
        lists=[([], "1")],
        watches=[[{"type": "SURPRISE", "object": obj("a", "2")}, {"type": "ADDED", "object": obj("b", "3")}]],
    )
    _, seen, _ = run(kube)
    assert seen == [("ADDED", "b", "3")]


def test_stop_interrupts_a_waiting_stream() -> None:
    """stop() shuts the open response down, so run() returns without waiting for the server's timeout."""

    class Blocking(ScriptedKube):
        def watch(self, resource: Resource, *, resource_version: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
            released = threading.Event()

            class Response:
                def shutdown(self) -> None:
                    released.set()

            kwargs["on_response"](Response())
            released.wait(10)
            raise TemporaryKubeError("stream interrupted")
            yield {}

    kube = Blocking(lists=[([], "1")] * 3, watches=[])
    informer = Informer(kube, RESOURCE, settings=KubeSettings(), handler=lambda *a: None)  # type: ignore[arg-type]
    thread = threading.Thread(target=informer.run, args=(threading.Event(),))
    thread.start()
    informer.synced.wait(5)
    informer.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_a_stream_that_ends_at_once_without_events_backs_off_before_listing_again() -> None:
    """client-go's "very short watch": a server that closes every stream at once must not be listed in a tight loop."""

    class ClosesAtOnce(ScriptedKube):
        def __init__(self) -> None:
            super().__init__(lists=[], watches=[])
            self.listed = 0

        def list_objects(self, resource: Resource, **_: Any) -> tuple[list[dict[str, Any]], str]:
            self.listed += 1
            return [], str(self.listed)

    kube = ClosesAtOnce()
    restarts: list[str] = []
    informer = Informer(
        kube,  # type: ignore[arg-type]
        RESOURCE,
        settings=KubeSettings(),
        handler=lambda *a: None,
        on_restart=restarts.append,
    )
    thread = threading.Thread(target=informer.run, args=(kube.stop,))
    thread.start()
    # Backoffs of 1 s then 2 s: in 2.5 s, two lists and two watches, where the loop without the rule made thousands.
    thread.join(2.5)
    kube.stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert kube.listed == 2
    assert restarts == ["short", "short"]
