"""Property-based: random and hostile input from the swarm never escapes the parsers, and refused input writes nothing.

Hypothesis throws at the parsers what a member could send (bytes, JSON of any
shape and depth, YAML kubeconfigs of any shape), and at one discovery round a
mix of announcements and documents, some fetches failing: only the parsers'
own errors come out, and a round made only of such input discovers nothing,
so peer_sync plans no write.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.announcement import (
    Announce,
    MessageError,
    decode,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.discovery import Received, discover
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    DocumentError,
    IdentityDocument,
    canonical_json,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
    parse,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.peer_sync import Scope, plan
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import seal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kubeconfigs import kubeconfig_dict

KEY = bytes(range(32))
PUBLISHER = "QmRwrdNfviriN1FVRCgYB33GExvE81kvt75bzbG7M2rLGz"
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
deep = st.integers(min_value=1, max_value=20_000).map(lambda n: b"[" * n + b"]" * n)
hostile_bytes = st.binary(max_size=2048) | deep | json_values.map(lambda v: json.dumps(v).encode())


@SETTINGS
@given(hostile_bytes)
def test_announcements_raise_only_message_errors(raw: bytes) -> None:
    with contextlib.suppress(MessageError):
        decode(raw)


@SETTINGS
@given(hostile_bytes | json_values.map(lambda v: canonical_json({"schema": v})))
def test_documents_raise_only_document_errors(raw: bytes) -> None:
    with contextlib.suppress(DocumentError):
        IdentityDocument.decode(raw)


def _mutated_kubeconfig(path: list[str], value: Any) -> str:
    config: Any = kubeconfig_dict("member", token="t")
    target = config
    for key in path[:-1]:
        target = target[key] if isinstance(target, dict) else target[0]
    if isinstance(target, dict):
        target[path[-1]] = value
    return yaml.safe_dump(config)


kubeconfig_texts = (
    st.text(max_size=500)
    | json_values.map(yaml.safe_dump)
    | st.builds(
        _mutated_kubeconfig,
        st.sampled_from(
            [
                ["users", "user", "exec"],
                ["users", "user", "tokenFile"],
                ["clusters", "cluster", "server"],
                ["clusters", "cluster", "proxy-url"],
                ["contexts", "context", "namespace"],
                ["current-context"],
                ["clusters"],
            ]
        ).map(list),
        json_values,
    )
)


@SETTINGS
@given(kubeconfig_texts)
def test_kubeconfigs_raise_only_kubeconfig_errors(text: str) -> None:
    with contextlib.suppress(KubeconfigError):
        parse(text)


@SETTINGS
@given(
    st.lists(st.tuples(hostile_bytes, st.integers(min_value=0, max_value=2**63 - 1), st.booleans()), max_size=6),
    kubeconfig_texts,
)
def test_a_discovery_round_of_hostile_input_discovers_nothing_and_plans_no_write(
    documents: list[tuple[bytes, int, bool]], kubeconfig: str
) -> None:
    blobs: dict[str, bytes] = {}
    messages = []
    for index, (raw, sequence, fails) in enumerate(documents):
        cid = CID[:-2] + f"{index:02d}".translate(str.maketrans("0123456789", "abcdefghij"))
        blobs[cid] = raw if not fails else b""
        messages.append(Received(PUBLISHER, Announce(PUBLISHER, cid, sequence).encode()))
        messages.append(Received(PUBLISHER, raw[:1024]))
    # And a well-formed document whose sealed kubeconfig is hostile.
    try:
        parse(kubeconfig)
        hostile_kubeconfig = False
    except KubeconfigError:
        hostile_kubeconfig = True
    if hostile_kubeconfig:
        document = IdentityDocument(
            publisher=PUBLISHER,
            sequence=2**62,
            issued_at="2026-11-30T00:00:00Z",
            name="member",
            kubeconfig=seal(KEY, kubeconfig.encode("utf-8", "surrogatepass"), publisher=PUBLISHER, sequence=2**62),
        )
        blobs[CID] = document.encode()
        messages.append(Received(PUBLISHER, Announce(PUBLISHER, CID, 2**62).encode()))

    def fetch(cid: str) -> bytes:
        if not blobs.get(cid):
            raise TimeoutError("nobody serves it")
        return blobs[cid]

    found = discover(messages, own_peer_id="QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq", swarm_key=KEY, fetch=fetch)
    assert found.identities == {}
    scope = Scope("me", "ns", "uid", "ns", "pool", "swarm")
    decided = plan(
        scope,
        existing=[],
        discovered=[],
        removed={},
        refused=[r.sender for r in found.rejected],
        now="2026-11-30T00:00:00Z",
        offline_after=3,
        forget_after=10,
    )
    assert decided.actions == []
