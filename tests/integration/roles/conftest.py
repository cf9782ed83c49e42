"""Fixtures for the role tests: one whole cluster of the product per test module.

The cluster is testbed.federation's: a real control plane with the CRDs, the
kubelet stand-in running kubo pods as real kubo processes, and the operator
and discovery agent started as the manager Deployment starts them. Starting
one costs about 10 s and 400 MB, so each module shares one; its tests work in
namespaces of their own. Everything it started stops when the module ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testbed.federation import Cluster, Federation


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # Named after the module (test_swarmpool_role -> swarmpool-role) so logs and kubeconfigs say whose it is.
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    with Federation(tmp_path_factory.mktemp(name)) as federation:
        yield federation.add_cluster(name)
