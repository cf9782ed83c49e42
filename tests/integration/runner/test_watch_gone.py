"""410 Gone from the real API server, and the re-list that loses nothing.

Against the test bed (its etcd is needed to force compaction, so this test is
not marked real_cluster): the informer lists, then, while no watch is open, one
widget changes, one is deleted and one is created; etcd is compacted at its
current revision and the CRD is changed, which makes the API server rebuild the
kind's watch cache from now. A watch from the informer's old resourceVersion is
then answered with a real "410 too old resource version", which the informer
reports as GoneError (its run loop re-lists on it: see
tests/unit/runner/test_watching.py), and the re-list reports exactly the three
missed changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from cluster_discovery_operator.kube import GoneError, KubeClient
from cluster_discovery_operator.settings import KubeSettings
from cluster_discovery_operator.watching import Informer

from tests.integration.runner.conftest import Cluster
from tests.integration.runner.test_operator import API_VERSION, compact, rebuild_watch_cache

pytestmark = [pytest.mark.integration]


def test_a_real_410_leads_to_a_relist_that_reports_every_missed_change(
    cluster: Cluster, namespace: str, widget_crd: str
) -> None:
    if cluster.etcd_url is None:
        pytest.skip("forcing compaction needs the test bed's etcd")

    def widget(name: str, message: str) -> None:
        cluster.apply(
            {
                "apiVersion": API_VERSION,
                "kind": "Widget",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"message": message},
            }
        )

    for name in ("a", "b", "d"):
        widget(name, "one")
    kube = KubeClient(KubeSettings(kubeconfig=str(cluster.kubeconfig), watch_timeout=10))
    resource = kube.discover("test.cluster-discovery.example.com", "v1alpha1", "Widget")
    seen: list[tuple[str, str, Any]] = []
    informer = Informer(
        kube,
        resource,
        settings=kube.settings,
        namespace=namespace,
        handler=lambda kind, obj, old: seen.append((kind, obj["metadata"]["name"], obj.get("spec", {}).get("message"))),
    )
    stale = informer.relist()
    assert sorted(seen) == [("ADDED", "a", "one"), ("ADDED", "b", "one"), ("ADDED", "d", "one")]
    seen.clear()

    widget("a", "two")
    cluster.kubectl("delete", "widget", "b", "-n", namespace)
    widget("c", "new")
    compact(cluster)
    rebuild_watch_cache(cluster)

    with pytest.raises(GoneError, match="410"):
        informer.watch_once(stale)
    assert seen == [], "nothing was delivered from the expired version"
    informer.relist()
    assert sorted(seen) == [("ADDED", "c", "new"), ("DELETED", "b", "one"), ("MODIFIED", "a", "two")]
    assert sorted(informer.keys()) == [f"{namespace}/a", f"{namespace}/c", f"{namespace}/d"]
    kube.close()
