"""Identity documents: canonical encoding, size limit, strict validation, sealing, sequences.

Covers plugins/module_utils/identity.py and sealing.py without a node.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.identity import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    IdentityDocument,
    canonical_json,
    check_url,
    next_sequence,
)
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import (
    SealError,
    derive_key,
    open_sealed,
    seal,
)

PEER = "QmcnhBjk38swiaohSjBrLrFk7geRGnfFx1dxCY6B7DYAiq"
OTHER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
KEY = bytes(range(32))


def document(**changes: object) -> IdentityDocument:
    fields: dict[str, object] = {
        "publisher": PEER,
        "sequence": 1_700_000_000_000,
        "issued_at": "2026-11-29T01:00:00Z",
        "name": "Cluster 1",
        "description": "I'm cluster 1",
        "url": "https://35.240.24.118",
        "categories": ("computing", "EO data", "IOT data"),
        "addresses": ("/ip4/104.155.27.210/tcp/4001/p2p/" + PEER,),
        "kubernetes_version": "v1.37.2",
    }
    fields.update(changes)
    return IdentityDocument(**fields)  # type: ignore[arg-type]


def test_a_document_survives_encode_and_decode_unchanged() -> None:
    original = document(kubeconfig=seal(KEY, b"apiVersion: v1", publisher=PEER, sequence=1_700_000_000_000))
    decoded = IdentityDocument.decode(original.encode())
    assert decoded == original
    assert decoded.kubeconfig == original.kubeconfig


def test_the_encoding_is_canonical_so_equal_documents_have_equal_bytes() -> None:
    raw = document().encode()
    assert raw == canonical_json(json.loads(raw))
    assert b" " not in raw.replace(b"I'm cluster 1", b"").replace(b"EO data", b"").replace(b"IOT data", b"").replace(
        b"Cluster 1", b""
    )
    pretty = json.dumps(json.loads(raw), indent=2).encode()
    with pytest.raises(DocumentError, match="canonical"):
        IdentityDocument.decode(pretty)


def test_a_document_larger_than_the_limit_is_refused_on_both_sides() -> None:
    huge = seal(KEY, b"x" * MAX_DOCUMENT_BYTES, publisher=PEER, sequence=1_700_000_000_000)
    with pytest.raises(DocumentError, match="more than the limit"):
        document(kubeconfig=huge).encode()
    with pytest.raises(DocumentError, match="more than the limit"):
        IdentityDocument.decode(b"{" + b" " * MAX_DOCUMENT_BYTES + b"}")


def _raw(**overrides: object) -> bytes:
    value = json.loads(document().encode())
    value.update(overrides)
    return canonical_json(value)


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        pytest.param(b"\xff\xfe", "not UTF-8 JSON", id="not-utf8"),
        pytest.param(b"[1,2]", "not a JSON object", id="not-an-object"),
        pytest.param(_raw(extra=1), "unknown: extra", id="unknown-field"),
        pytest.param(
            canonical_json({k: v for k, v in json.loads(_raw()).items() if k != "name"}),
            "missing: name",
            id="missing-field",
        ),
        pytest.param(_raw(schema="other/v9"), "unsupported schema", id="wrong-schema"),
        pytest.param(_raw(publisher="not-a-peer"), "peer id", id="bad-publisher"),
        pytest.param(_raw(sequence=True), "sequence must be a int", id="boolean-sequence"),
        pytest.param(_raw(sequence=-1), "sequence must be between", id="negative-sequence"),
        pytest.param(_raw(issuedAt="yesterday"), "RFC 3339", id="bad-time"),
        pytest.param(_raw(name=""), "name must not be empty", id="empty-name"),
        pytest.param(_raw(name="x" * 254), "longer than 253", id="long-name"),
        pytest.param(_raw(url="ftp://example.org"), "http or https", id="bad-url-scheme"),
        pytest.param(_raw(categories=["a", "a"]), "unique", id="duplicate-category"),
        pytest.param(_raw(categories=[1]), "list of strings", id="non-string-category"),
        pytest.param(_raw(addresses=["not a multiaddr"]), "multiaddrs", id="bad-address"),
        pytest.param(_raw(description="bell\x07"), "control characters", id="control-characters"),
        pytest.param(
            _raw(kubeconfig={"alg": "rot13", "nonce": "", "ciphertext": ""}), "unsupported sealing", id="bad-seal-alg"
        ),
        pytest.param(_raw(kubeconfig="apiVersion: v1"), "exactly the keys", id="clear-kubeconfig"),
        pytest.param(_raw(tombstone=True), "tombstone carries no identity", id="tombstone-with-fields"),
    ],
)
def test_a_malformed_document_is_refused_with_the_rule_it_breaks(raw: bytes, rule: str) -> None:
    with pytest.raises(DocumentError, match=rule):
        IdentityDocument.decode(raw)


def test_a_tombstone_carries_only_publisher_sequence_and_time() -> None:
    tombstone = IdentityDocument(publisher=PEER, sequence=5, issued_at="2026-11-29T01:00:00Z", tombstone=True)
    assert IdentityDocument.decode(tombstone.encode()) == tombstone


def test_same_content_ignores_sequence_time_and_seal_randomness_only() -> None:
    a = document(kubeconfig=seal(KEY, b"k", publisher=PEER, sequence=1))
    b = document(sequence=2, issued_at="2026-11-30T00:00:00Z", kubeconfig=seal(KEY, b"k", publisher=PEER, sequence=2))
    assert a.same_content(b)
    assert not a.same_content(document(description="I'm cluster 1, but updated"))
    assert not a.same_content(document(categories=("computing",)))


def test_sequences_only_grow_even_when_the_clock_is_behind() -> None:
    assert next_sequence(None, now_ms=1000) == 1000
    assert next_sequence(999, now_ms=1000) == 1000
    assert next_sequence(5000, now_ms=1000) == 5001


def test_a_sealed_kubeconfig_opens_only_with_the_same_swarm_key_publisher_and_sequence() -> None:
    box = seal(KEY, b"apiVersion: v1\nkind: Config\n", publisher=PEER, sequence=7)
    assert b"kind: Config" not in box.ciphertext
    assert open_sealed(KEY, box, publisher=PEER, sequence=7) == b"apiVersion: v1\nkind: Config\n"
    for key, publisher, sequence in [(os.urandom(32), PEER, 7), (KEY, OTHER, 7), (KEY, PEER, 8)]:
        with pytest.raises(SealError):
            open_sealed(key, box, publisher=publisher, sequence=sequence)


def test_derived_keys_differ_per_purpose_and_per_swarm() -> None:
    assert derive_key(KEY, "kubeconfig") != derive_key(KEY, "pubsub-topic")
    assert derive_key(KEY, "kubeconfig") != derive_key(bytes(32), "kubeconfig")
    with pytest.raises(ValueError):
        derive_key(b"short", "kubeconfig")


@pytest.mark.parametrize(
    "url", ["http://[", "http://[::1", "http://a b", "ftp://host", "http://", "http:///path", "https://\n"]
)
def test_a_url_that_is_not_http_or_https_naming_a_host_is_a_document_error(url: str) -> None:
    with pytest.raises(DocumentError, match="url must be an http or https URL"):
        check_url(url)


@pytest.mark.parametrize("url", ["http://cluster1", "https://203.0.113.7:6443", "https://[2001:db8::1]:6443/base"])
def test_http_and_https_urls_naming_a_host_pass(url: str) -> None:
    check_url(url)
