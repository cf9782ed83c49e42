# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Keep Peer objects in step with the identities discovered on a swarm.

Private to the collection: may change without notice.

Decide in a pure function, act in a small service (community.crypto's
backend split): :func:`plan` turns what the swarm said and what the cluster
holds into actions, so every rule is unit-tested without an API server:

- a discovered identity becomes (or updates) a Peer named after the
  lowercased publisher peer id, Online, missingCounter 0, with its kubeconfig
  in a Secret named by the ``clusterdiscovery/kubeconfig-secret`` annotation
  (and that kubeconfig's SHA-256 in ``kubeconfig-sha256``, so the Peer changes
  when its kubeconfig does and the peer role checks it again)
  and its categories as labels, so ``kubectl get peers -l`` finds them;
- a tombstone deletes the Peer and its Secret;
- a Peer never goes back in time: a round that carries an older document (or
  tombstone) than the one the Peer already shows leaves it alone. The role's
  discovery round and the agent's fast path write the same Peers, and the
  round that started first may finish last;
- a Peer of this identity and swarm whose member was not heard within the
  Offline time (discovery's ``fresh_within``) counts one more miss; from
  ``offline_after`` misses (one by default: the time already holds the
  patience) it is Offline, from ``forget_after`` it is deleted (a cluster
  that vanished without retracting);
- the agent's fast path counts no misses, but a member it knows to be silent
  for longer than the Offline time turns Offline at once;
- ``lastSeen`` is written when the Peer changes, never on its own: the time its
  member was heard when the Peer is created, turns Online or gets a new
  document, and the last time it was heard when the Peer turns Offline. A
  steady swarm's rounds write nothing (liveness lives in what the agent heard,
  as a node's heartbeat lives in its Lease rather than in its status);
- a Peer whose member only sent documents we refused is left exactly as it is:
  a misbehaving member changes nothing;
- a Peer that carries another identity's labels is never touched;
- at most MAX_PEERS_PER_SWARM Peers are kept per Identity and swarm;
- a kubeconfig is checked again against the one accepted shape
  (member_kubeconfig) right before it is written: one that fails refuses its
  member's whole news, exactly as discovery refuses such a document.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.conventions import (
    API_VERSION,
    CATEGORY_LABEL_PREFIX,
    KUBECONFIG_ANNOTATION,
    KUBECONFIG_DIGEST_ANNOTATION,
    LABEL_IDENTITY,
    LABEL_IDENTITY_NAMESPACE,
    LABEL_SWARM,
    peer_kubeconfig_secret,
    peer_name,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.kube import (
    TIME_FORMAT,
    AlreadyExistsError,
    KubernetesError,
    Resources,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    parse as parse_kubeconfig,
)

SECRET_KEY = "config"
ONLINE, OFFLINE = "Online", "Offline"
# Peers of one Identity on one swarm: members are cheap to make (a key pair),
# Peers are objects in etcd, so a swarm flooded with members gets no more.
MAX_PEERS_PER_SWARM = 256


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters of [a-z0-9A-Z-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-_.")
    return value[:63].rstrip("-_.")


def category_label(category: str) -> str:
    """The label key a category becomes: ``category.peerdiscovery.irt-saintexupery.com/eo-data``."""
    slug = re.sub(r"[^a-z0-9]+", "-", category.lower()).strip("-")[:63].strip("-")
    return CATEGORY_LABEL_PREFIX + (slug or "unnamed")


@dataclass(frozen=True)
class Scope:
    """Which Peers a synchronization owns: one local Identity on one swarm, in one namespace."""

    identity_name: str
    identity_namespace: str
    identity_uid: str | None
    namespace: str
    swarm_pool: str
    swarm: str

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_IDENTITY: label_value(self.identity_name),
            LABEL_IDENTITY_NAMESPACE: label_value(self.identity_namespace),
            LABEL_SWARM: label_value(self.swarm),
        }

    def owns(self, peer: Mapping[str, Any]) -> bool:
        labels = (peer.get("metadata") or {}).get("labels") or {}
        return all(labels.get(key) == value for key, value in self.labels.items())


def selector(scope: Scope) -> str:
    """The label selector of the Peers ``scope`` owns."""
    return ",".join(f"{key}={value}" for key, value in sorted(scope.labels.items()))


@dataclass
class Action:
    verb: str  # "apply" (create or update) | "status" | "delete"
    name: str
    peer: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    kubeconfig: str | None = None
    # The sequence of the document (or tombstone) behind the action, when known.
    sequence: int | None = None
    # The Peer as the plan saw it listed: an action that would change nothing of it needs no read.
    listed: Mapping[str, Any] | None = None


@dataclass
class SyncPlan:
    actions: list[Action] = field(default_factory=list)
    online: int = 0
    offline: int = 0
    synchronized: int = 0
    warnings: list[str] = field(default_factory=list)


PEERS_GAUGE = "cluster_discovery_controller_identity_controller_peers_number"
SYNC_PEERS_GAUGE = "cluster_discovery_controller_identity_controller_sync_peers_number"
_PEERS_HELP = "Number of known peer associated to a given identity"
_SYNC_PEERS_HELP = "Number of synchronized peers (peer with a valid published identity) associated to a given identity"


def gauges(scope: Scope, counted: SyncPlan, *, refused: int | None = None) -> list[dict[str, Any]]:
    """The Prometheus gauges of one Identity and swarm, as osdk_metric requests, from a plan's counts.

    The original controller's names and labels: ``peers_number`` counts the Peers Online (status
    ``Synchronized``) and Offline (``Out of sync``); ``sync_peers_number`` the members heard with a valid
    identity (``Synchronized``) and, given ``refused``, the members whose documents were refused (``Out of
    sync``). The identity role sets them at each round; the discovery agent after each pass, which hears no
    refused announcements (its listener drops them), so it leaves ``refused`` out rather than set 0.
    """
    labels = {
        "identity_name": scope.identity_name,
        "identity_namespace": scope.identity_namespace,
        "swarm_name": scope.swarm,
        "swarmpool_name": scope.swarm_pool,
        "swarmpool_namespace": scope.namespace,
    }
    counts = [
        (PEERS_GAUGE, _PEERS_HELP, "Synchronized", counted.online),
        (PEERS_GAUGE, _PEERS_HELP, "Out of sync", counted.offline),
        (SYNC_PEERS_GAUGE, _SYNC_PEERS_HELP, "Synchronized", counted.synchronized),
    ]
    if refused is not None:
        counts.append((SYNC_PEERS_GAUGE, _SYNC_PEERS_HELP, "Out of sync", refused))
    return [
        {"name": name, "description": help_text, "labels": {**labels, "status": status}, "gauge": {"set": value}}
        for name, help_text, status, value in counts
    ]


def secret_name(peer_id: str) -> str:
    return peer_kubeconfig_secret(peer_name(peer_id))


def desired_peer(scope: Scope, identity: Mapping[str, Any], *, kubeconfig: str | None = None) -> dict[str, Any]:
    """The Peer object for one discovered identity (without status); ``kubeconfig`` is the one its Secret gets."""
    peer_id = identity["peer_id"]
    annotations = {KUBECONFIG_ANNOTATION: secret_name(peer_id)}
    if kubeconfig is not None:
        annotations[KUBECONFIG_DIGEST_ANNOTATION] = hashlib.sha256(kubeconfig.encode()).hexdigest()
    metadata: dict[str, Any] = {
        "name": peer_name(peer_id),
        "namespace": scope.namespace,
        "labels": {**scope.labels, **{category_label(c): "true" for c in identity.get("categories") or []}},
        "annotations": annotations,
    }
    # Owner references cannot cross namespaces; a Peer in another namespace
    # than its Identity is cleaned up by the identity role's finalizer instead.
    if scope.identity_uid and scope.namespace == scope.identity_namespace:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "Identity",
                "name": scope.identity_name,
                "uid": scope.identity_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "Peer",
        "metadata": metadata,
        "spec": {
            "name": identity.get("name", ""),
            "description": identity.get("description", ""),
            # No URL is no URL: the Peer CRD admits only http(s) URLs, not "".
            **({"URL": identity["url"]} if identity.get("url") else {}),
            "categories": [{"name": c} for c in identity.get("categories") or []],
        },
    }


def _at(value: Any) -> datetime | None:
    """``value`` read as a time as Kubernetes writes one (the Peer CRD's lastSeen is a date-time), else None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT)
    except ValueError:
        return None


def heard_time(value: Any) -> str | None:
    """``value`` when it is a time as Kubernetes writes one, else None."""
    return value if _at(value) is not None else None


def last_heard(identities: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``plan``'s ``last_heard``: when each member of a discovery round's ``identities`` was heard, where known."""
    return {item["peer_id"]: item["heard_at"] for item in identities if item.get("heard_at")}


def _stale_online(previous: Mapping[str, Any], heard: Any) -> bool:
    """Whether turning a Peer shown as ``previous`` Online, on a member last heard at ``heard``, undoes a later word.

    A round learns the members, then lists the Peers and writes, seconds apart under load. Meanwhile the agent may
    have turned a member that fell silent Offline, with lastSeen the time of its last announcement; a round that
    knew no later one leaves that Peer Offline. (The reverse race heals itself: the agent turns a Peer Online
    again at the member's next announcement.)
    """
    last_seen, known = _at(previous.get("lastSeen")), _at(heard)
    return previous.get("status") == OFFLINE and last_seen is not None and known is not None and known <= last_seen


def _online_since(identity: Mapping[str, Any], previous: Mapping[str, Any], now: str) -> str:
    """lastSeen of a Peer found Online: unchanged while it stays Online with the same document."""
    kept = heard_time(previous.get("lastSeen"))
    if kept is not None and previous.get("status") == ONLINE and previous.get("sequence") == identity.get("sequence"):
        return kept
    return heard_time(identity.get("heard_at")) or now


def _status(
    scope: Scope,
    *,
    state: str,
    missing: int,
    last_seen: str | None,
    identity: Mapping[str, Any] | None,
) -> dict[str, Any]:
    # Only the fields this round owns: the status is merge-patched, and the Peer check writes its
    # conditions beside them; a copy of what was read would put back conditions it replaced meanwhile.
    # Without last_seen, the Peer keeps the lastSeen it has.
    status: dict[str, Any] = {"status": state, "missingCounter": missing}
    status["swarm"] = {"namespace": scope.namespace, "swarmPool": scope.swarm_pool, "swarm": scope.swarm}
    status["identity"] = {"name": scope.identity_name, "namespace": scope.identity_namespace}
    if last_seen is not None:
        status["lastSeen"] = last_seen
    if identity is not None:
        status["peerId"] = identity["peer_id"]
        status["sequence"] = identity["sequence"]
        status["kubernetesVersion"] = identity.get("kubernetes_version", "")
    return status


def tombstones(items: Iterable[Any]) -> dict[str, int | None]:
    """``removed`` as ``ipfs_identity`` returns it ({peer_id, sequence}), or bare peer ids, by peer id.

    Raises ValueError naming the first item that is neither.
    """
    result: dict[str, int | None] = {}
    for index, item in enumerate(items):
        if isinstance(item, str) and item:
            result[item] = None
            continue
        if isinstance(item, Mapping) and isinstance(item.get("peer_id"), str) and item["peer_id"]:
            sequence = item.get("sequence")
            if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int)):
                raise ValueError(f"removed[{index}].sequence must be an integer, not {sequence!r}")
            result[item["peer_id"]] = sequence
            continue
        raise ValueError(f"removed[{index}] must be a peer id or a mapping with peer_id (and sequence)")
    return result


def plan(
    scope: Scope,
    *,
    existing: Sequence[Mapping[str, Any]],
    discovered: Iterable[Mapping[str, Any]],
    removed: Mapping[str, int | None],
    refused: Iterable[str],
    now: str,
    offline_after: int,
    forget_after: int,
    count_misses: bool = True,
    silent: Iterable[str] = (),
    last_heard: Mapping[str, Any] | None = None,
) -> SyncPlan:
    """Actions that bring the Peers of ``scope`` in line with one discovery round.

    ``count_misses`` false applies news only (what was heard and retracted)
    and leaves every other Peer as it is: the agent's fast path, which did
    not ask the swarm, has no round in which a member could be missed. The
    exception is ``silent``: members the agent has heard, but not within the
    Offline time; their Peers turn Offline (one miss) when they are not yet.
    ``last_heard`` gives, by peer id, when members not heard now were last
    heard: the lastSeen of a Peer that turns Offline.
    """
    result = SyncPlan()
    by_name: dict[str, Mapping[str, Any]] = {str((p.get("metadata") or {}).get("name") or ""): p for p in existing}
    seen: set[str] = set()
    untouched = {peer_name(p) for p in refused}
    gone_quiet = {peer_name(p) for p in silent}
    heard_before = {peer_name(p): at for p, at in (last_heard or {}).items() if heard_time(at) is not None}
    room = MAX_PEERS_PER_SWARM - sum(1 for p in existing if scope.owns(p))
    for identity in discovered:
        name = peer_name(identity["peer_id"])
        kubeconfig = identity.get("kubeconfig")
        if kubeconfig is not None:
            try:
                kubeconfig = parse_kubeconfig(kubeconfig).to_text()
            except KubeconfigError as err:
                result.warnings.append(f"the kubeconfig of member {identity['peer_id']} is refused: {err}")
                untouched.add(name)
                continue
        seen.add(name)
        current = by_name.get(name)
        if current is not None and not scope.owns(current):
            result.warnings.append(f"Peer {scope.namespace}/{name} belongs to another Identity; left unchanged")
            continue
        if current is None:
            if room <= 0:
                result.warnings.append(
                    f"member {identity['peer_id']} gets no Peer: {MAX_PEERS_PER_SWARM} Peers of this swarm already"
                )
                continue
            room -= 1
        previous = (current or {}).get("status") or {}
        if _stale_online(previous, identity.get("heard_at")):
            result.offline += 1
            continue
        result.online += 1
        result.synchronized += 1
        result.actions.append(
            Action(
                verb="apply",
                name=name,
                peer=desired_peer(scope, identity, kubeconfig=kubeconfig),
                status=_status(
                    scope,
                    state=ONLINE,
                    missing=0,
                    last_seen=_online_since(identity, previous, now),
                    identity=identity,
                ),
                kubeconfig=kubeconfig,
                sequence=identity.get("sequence"),
                listed=current,
            )
        )
    for peer_id, sequence in removed.items():
        name = peer_name(peer_id)
        seen.add(name)
        if name in by_name and scope.owns(by_name[name]):
            result.actions.append(Action(verb="delete", name=name, sequence=sequence))
    for name, current in by_name.items():
        if name in seen or not name or not scope.owns(current):
            continue
        previous = current.get("status") or {}
        # Without a round of its own, the fast path counts a miss only for a member it knows fell silent.
        fell_silent = not count_misses and name in gone_quiet and previous.get("status") != OFFLINE
        if name in untouched or not (count_misses or fell_silent):
            if previous.get("status") == OFFLINE:
                result.offline += 1
            else:
                result.online += 1
            continue
        missing = int(previous.get("missingCounter") or 0) + 1
        if missing >= forget_after:
            result.actions.append(Action(verb="delete", name=name))
            continue
        state = OFFLINE if missing >= offline_after or fell_silent else previous.get("status") or ONLINE
        if state == OFFLINE:
            result.offline += 1
        else:
            result.online += 1
        turns_offline = state == OFFLINE and previous.get("status") != OFFLINE
        result.actions.append(
            Action(
                verb="status",
                name=name,
                status=_status(
                    scope,
                    state=state,
                    missing=missing,
                    last_seen=heard_before.get(name) if turns_offline else None,
                    identity=None,
                ),
                listed=current,
            )
        )
    return result


def kubeconfig_secret(scope: Scope, name: str, kubeconfig: str, owner_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": peer_kubeconfig_secret(name),
            "namespace": scope.namespace,
            "labels": scope.labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Peer",
                    "name": name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {SECRET_KEY: base64.b64encode(kubeconfig.encode()).decode()},
    }


def _subset_differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when ``wanted`` sets a value ``current`` does not have (merge-patch semantics)."""
    for key, value in wanted.items():
        if isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            if _subset_differs(current[key], value):
                return True
        elif current.get(key) != value:
            return True
    return False


@dataclass
class Applied:
    changed: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """``<peer>: <why>`` for each member whose Peer could not be written; the others were."""


def apply(plan_: SyncPlan, scope: Scope, *, peers: Resources, secrets: Resources, check_mode: bool) -> Applied:
    """Carry out ``plan_``: write only what differs, so a second identical round changes nothing.

    What one member published can still be refused by the API server (a field
    its CRD validates more strictly): that member's Peer is left as it was and
    reported in ``failed``; the other members' Peers are written all the same.
    """
    result = Applied()
    for action in plan_.actions:
        try:
            _apply_action(action, scope, result, peers=peers, secrets=secrets, check_mode=check_mode)
        except KubernetesError as err:
            result.failed.append(f"{action.name}: {err}")
    return result


def _peer_changes(action: Action, current: Mapping[str, Any]) -> bool:
    """Whether ``action`` would write anything to the Peer ``current`` (its Secret aside)."""
    if _newer_than(current, action.sequence):
        return False
    if (
        action.verb == "apply"
        and action.peer is not None
        and _subset_differs(current, _peer_patch(action.peer, current))
    ):
        return True
    return action.status is not None and _subset_differs(current.get("status") or {}, action.status)


def _peer_patch(peer: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes ``current`` the wanted ``peer`` (metadata and spec)."""
    spec = dict(peer["spec"])
    if "URL" not in spec and (current.get("spec") or {}).get("URL"):
        spec["URL"] = None  # the member no longer publishes one
    return {"metadata": _desired_metadata(peer, current), "spec": spec}


def _apply_action(
    action: Action, scope: Scope, result: Applied, *, peers: Resources, secrets: Resources, check_mode: bool
) -> None:
    if (
        action.verb != "delete"
        and action.kubeconfig is None
        and action.listed is not None
        and not _peer_changes(action, action.listed)
    ):
        # As listed moments ago, nothing to write: no read either. At 50 members every pass of the agent read
        # each Peer again to write nothing (issue 20). A writer that changed it meanwhile is corrected by the
        # next round, as when it writes just after us.
        return
    current = peers.get(action.name, scope.namespace)
    if _newer_than(current, action.sequence):
        return  # another writer already applied a later document of this member
    if action.verb == "delete":
        if current is not None:
            result.changed = True
            result.deleted.append(action.name)
            if not check_mode:
                peers.delete(action.name, scope.namespace)
                secrets.delete(peer_kubeconfig_secret(action.name), scope.namespace)
        return
    touched = False
    if action.verb == "apply" and action.peer is not None:
        if current is None:
            touched = True
            try:
                current = peers.create(action.peer) if not check_mode else dict(action.peer)
                result.created.append(action.name)
            except AlreadyExistsError:
                # Another writer (the agent's fast path or the role) was faster: update it instead.
                current = peers.get(action.name, scope.namespace) or dict(action.peer)
        if current is not None and action.name not in result.created:
            patch = _peer_patch(action.peer, current)
            if _subset_differs(current, patch):
                touched = True
                if not check_mode:
                    current = peers.patch(action.name, scope.namespace, patch)
        if action.kubeconfig is not None:
            owner_uid = str((current.get("metadata") or {}).get("uid") or "")
            wanted_secret = kubeconfig_secret(scope, action.name, action.kubeconfig, owner_uid)
            existing_secret = secrets.get(wanted_secret["metadata"]["name"], scope.namespace)
            secret_name_ = wanted_secret["metadata"]["name"]
            if existing_secret is None:
                touched = True
                if not check_mode:
                    try:
                        secrets.create(wanted_secret)
                    except AlreadyExistsError:
                        secrets.patch(secret_name_, scope.namespace, {"data": wanted_secret["data"]})
            elif (existing_secret.get("data") or {}).get(SECRET_KEY) != wanted_secret["data"][SECRET_KEY]:
                touched = True
                if not check_mode:
                    secrets.patch(secret_name_, scope.namespace, {"data": wanted_secret["data"]})
    if (
        action.status is not None
        and current is not None
        and _subset_differs(current.get("status") or {}, action.status)
    ):
        touched = True
        if not check_mode:
            peers.patch_status(action.name, scope.namespace, action.status)
    if touched:
        result.changed = True
        if action.name not in result.created:
            result.updated.append(action.name)


def _newer_than(peer: Mapping[str, Any] | None, sequence: int | None) -> bool:
    """True when ``peer`` already shows a document later than ``sequence``."""
    if peer is None or sequence is None:
        return False
    shown = (peer.get("status") or {}).get("sequence")
    return isinstance(shown, int) and not isinstance(shown, bool) and shown > sequence


def _desired_metadata(peer: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The Peer's wanted metadata as a merge patch: categories no longer published lose their label."""
    metadata = {key: value for key, value in peer["metadata"].items() if key not in ("name", "namespace")}
    current_labels = (current.get("metadata") or {}).get("labels") or {}
    stale = {key: None for key in current_labels if key.startswith(CATEGORY_LABEL_PREFIX)}
    metadata["labels"] = {**stale, **metadata["labels"]}
    return metadata
