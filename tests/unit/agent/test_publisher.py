"""The agent's publisher logs why it left an Identity to the operator once per reason, not once per watch event.

Every status write of the role or the runner is a watch event of the Identity;
while the agent cannot publish it (its swarm not ready yet, a Secret in the
way), the same reason used to be logged at each, about 12 lines per 30 s for
as long as it lasted (issue 19).
"""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from cluster_discovery_agent import publisher as publisher_module
from cluster_discovery_agent.channels import IdentityRef
from cluster_discovery_agent.swarms import SwarmNotReady
from cluster_discovery_operator.kube import KubeClient

REF = IdentityRef("ns", "cluster1-identity")


def identity(resource_version: str, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": REF.name, "namespace": REF.namespace, "generation": generation,
                     "resourceVersion": resource_version},
        "spec": {"swarms": [{"namespace": "ns", "swarmPool": "pool", "swarm": "main"}]},
    }  # fmt: skip


def test_one_reason_is_logged_once_however_many_events_repeat_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reasons = iter(["swarm ns/pool/main has no running node yet"] * 12 + ["the swarm key Secret ns/k has no swarm-key"])

    def not_ready(*args: Any, **kwargs: Any) -> None:
        raise SwarmNotReady(next(reasons))

    # No request is sent: _publish_on, which would use the client, is replaced.
    publisher = publisher_module.Publisher(cast(KubeClient, object()), kubernetes_version="v1.37.2")
    monkeypatch.setattr(publisher, "_publish_on", not_ready)
    caplog.set_level(logging.DEBUG, logger=publisher_module.__name__)
    for version in range(13):
        publisher(REF, identity(str(version)))
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "left ns/cluster1-identity to the operator: swarm ns/pool/main has no running node yet",
        "left ns/cluster1-identity to the operator: the swarm key Secret ns/k has no swarm-key",
    ]
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 11

    # Once published, a later refusal of the same reason is news again.
    monkeypatch.setattr(publisher, "_publish_on", lambda *args, **kwargs: None)
    publisher(REF, identity("14"))
    reasons = iter(["swarm ns/pool/main has no running node yet"])
    monkeypatch.setattr(publisher, "_publish_on", not_ready)
    caplog.clear()
    publisher(REF, identity("15", generation=2))
    assert [r.levelno for r in caplog.records] == [logging.INFO]
