# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Whether a Peer's published kubeconfig reaches its member's API server.

Private to the collection: may change without notice.

The kubeconfig came from a swarm member, so it is never given to a kubeconfig
loader (see member_kubeconfig): the client is built here from the three
checked values, server, CA and token, with no proxy and no local file. Only
Peers that this product wrote are checked, with the Secret it wrote for them:
a namespace user who points a Peer's ``clusterdiscovery/kubeconfig-secret``
annotation at another Secret, or writes a Peer of their own, gets no request
sent anywhere with anything.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    API_VERSION,
    KUBECONFIG_ANNOTATION,
    LABEL_IDENTITY,
    LABEL_IDENTITY_NAMESPACE,
    LABEL_SWARM,
    peer_kubeconfig_secret,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import Resources, ResourceService
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
    MemberKubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import (
    SECRET_KEY,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.task import (
    MakeClient,
    TaskModule,
    k8s_task_argspec,
)

MAX_MESSAGE = 300


@dataclass(frozen=True)
class Reachability:
    reachable: bool
    reason: str
    """One CamelCase word, for the Reachable condition."""
    message: str
    version: str = ""


def written_by_us(peer: Mapping[str, Any]) -> bool:
    """True for a Peer that peer_sync wrote: it carries the labels of the Identity and swarm it belongs to."""
    labels = (peer.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) for key in (LABEL_IDENTITY, LABEL_IDENTITY_NAMESPACE, LABEL_SWARM))


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    """True when ``obj`` has ``owner`` (by uid) as its controller."""
    uid = (owner.get("metadata") or {}).get("uid")
    return bool(uid) and any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def probe(kubeconfig: MemberKubeconfig, *, timeout: float) -> str:
    """GET /version with exactly the kubeconfig's server, CA and token; the gitVersion it answers."""
    import kubernetes.client

    configuration = kubernetes.client.Configuration(
        host=kubeconfig.server.rstrip("/"),
        api_key={"authorization": kubeconfig.token},
        api_key_prefix={"authorization": "Bearer"},
        ca_cert_data=kubeconfig.ca_data.decode("ascii"),
    )
    configuration.verify_ssl = True
    configuration.proxy = None
    with kubernetes.client.ApiClient(configuration) as api:
        info = kubernetes.client.VersionApi(api).get_code(_request_timeout=timeout)
    return str(info.git_version or "")


def check(
    peers: Resources,
    secrets: Resources,
    name: str,
    namespace: str,
    *,
    timeout: float,
    reach: Callable[[MemberKubeconfig], str] | None = None,
) -> Reachability:
    """Check one Peer; never raises for what a member or a namespace user wrote."""
    peer = peers.get(name, namespace)
    if peer is None:
        return Reachability(False, "NotFound", f"Peer {namespace}/{name} does not exist")
    if not written_by_us(peer):
        return Reachability(
            False, "NotManaged", "this Peer was not written by cluster-discovery; no kubeconfig of it is used"
        )
    secret_name = peer_kubeconfig_secret(name)
    annotations = (peer.get("metadata") or {}).get("annotations") or {}
    if annotations.get(KUBECONFIG_ANNOTATION) != secret_name:
        return Reachability(
            False,
            "NotManaged",
            f"the {KUBECONFIG_ANNOTATION} annotation must name {secret_name}, the Secret cluster-discovery writes",
        )
    secret = secrets.get(secret_name, namespace)
    if secret is None or not (secret.get("data") or {}).get(SECRET_KEY):
        return Reachability(False, "NoKubeconfig", f"no kubeconfig Secret {secret_name} for this Peer")
    if not owned_by(secret, peer):
        return Reachability(
            False, "NotManaged", f"the Secret {secret_name} was not written by cluster-discovery for this Peer; unused"
        )
    try:
        kubeconfig = parse_kubeconfig(base64.b64decode(secret["data"][SECRET_KEY]).decode("utf-8"))
    except (KubeconfigError, binascii.Error, UnicodeDecodeError, ValueError) as err:
        return Reachability(False, "KubeconfigRefused", f"the kubeconfig is refused: {err}"[:MAX_MESSAGE])
    try:
        version = (reach or (lambda checked: probe(checked, timeout=timeout)))(kubeconfig)
    except Exception as err:  # whatever the member's server does is an answer to report
        return Reachability(False, "APIServerUnreachable", _reason(err)[:MAX_MESSAGE])
    return Reachability(True, "APIServerAnswered", f"Kubernetes {version} answered at {kubeconfig.server}", version)


def _reason(err: Exception) -> str:
    status = getattr(err, "status", None)
    if status:
        return f"the API server answered {status} {getattr(err, 'reason', '') or ''}".strip()
    return f"the API server did not answer: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


# -- the peer_reachability task (its module and its action plugin) ------------------------------

ARG_SPEC: dict[str, Any] = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 10.0},
}


def argspec() -> dict[str, Any]:
    return k8s_task_argspec(ARG_SPEC)


def execute(module: TaskModule, make_client: MakeClient) -> dict[str, Any]:
    """The whole task: check the Peer ``name`` and report, changing nothing."""
    params = module.params
    client = make_client()
    outcome = check(
        ResourceService(client, "Peer", API_VERSION),
        ResourceService(client, "Secret", "v1"),
        params["name"],
        params["namespace"],
        timeout=params["timeout"],
    )
    return {
        "changed": False,
        "reachable": outcome.reachable,
        "reason": outcome.reason,
        "message": outcome.message,
        "version": outcome.version,
    }
