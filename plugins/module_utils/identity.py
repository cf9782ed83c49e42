# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The identity document: what a cluster tells its swarm about itself.

Private to the collection: may change without notice.

A document is published with ``add`` and travels by CID, so its bytes must be
reproducible and small: the encoding is canonical JSON (sorted keys, no
insignificant whitespace, UTF-8) and anything above MAX_DOCUMENT_BYTES is
refused before parsing. Everything received from the swarm is untrusted: the
decoder accepts exactly the schema below and nothing else, and the caller
checks that the announcing peer is the document's publisher.

Sequence numbers only grow: a publisher issues ``max(previous + 1, now in
milliseconds)``, so a cluster that lost its own state (a recreated Identity)
still outranks what it published before.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlparse

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils import bounded_json
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.multiaddr import BASE58, PEER_ID_RE
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.sealing import SealedBox, SealError

SCHEMA = "peerdiscovery.irt-saintexupery.com/identity/v1"
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_SEQUENCE = 2**63 - 1
# The schema nests two levels: the document, and its lists and sealed kubeconfig.
MAX_DEPTH = 2

# Bounds mirror the Identity CRD (and Kubernetes label limits for categories),
# so whatever a member publishes can be written into a Peer unchanged.
MAX_NAME = 253
MAX_DESCRIPTION = 1024
MAX_URL = 2048
MAX_CATEGORIES = 64
MAX_CATEGORY = 128
MAX_ADDRESSES = 32
MAX_ADDRESS = 512
MAX_VERSION = 64

# What `ipfs add` returns: CIDv0 (Qm...) or base32 CIDv1 (b...).
CID_RE = re.compile(rf"^(?:Qm{BASE58}{{44}}|b[a-z2-7]{{50,120}})$")
# The pattern of spec.URL in the Identity and Peer CRDs.
_URL_RE = re.compile(r"https?://[^\s/?#]+\S*")
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$")

_FIELDS = {
    "schema",
    "publisher",
    "sequence",
    "issuedAt",
    "tombstone",
    "name",
    "description",
    "url",
    "categories",
    "addresses",
    "kubernetesVersion",
    "kubeconfig",
}


class DocumentError(ValueError):
    """A document is malformed, oversized or inconsistent; the message says which rule failed."""


def next_sequence(previous: int | None, now_ms: int | None = None) -> int:
    """The next sequence number: larger than ``previous`` and at least the current time in ms."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return max((previous or 0) + 1, now)


@dataclass(frozen=True)
class IdentityDocument:
    """One published state of a cluster's identity (or its retraction when tombstone is set)."""

    publisher: str
    sequence: int
    issued_at: str
    tombstone: bool = False
    name: str = ""
    description: str = ""
    url: str = ""
    categories: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    kubernetes_version: str = ""
    kubeconfig: SealedBox | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "publisher": self.publisher,
            "sequence": self.sequence,
            "issuedAt": self.issued_at,
            "tombstone": self.tombstone,
            "name": self.name,
            "description": self.description,
            "url": self.url,
            "categories": list(self.categories),
            "addresses": list(self.addresses),
            "kubernetesVersion": self.kubernetes_version,
            "kubeconfig": self.kubeconfig.to_json() if self.kubeconfig else None,
        }

    def encode(self) -> bytes:
        """Canonical bytes; raises DocumentError when the document breaks a rule or the size limit."""
        validate(self)
        raw = canonical_json(self.to_json())
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"the document has {len(raw)} bytes, more than the limit of {MAX_DOCUMENT_BYTES}")
        return raw

    def same_content(self, other: IdentityDocument) -> bool:
        """True when both describe the same identity, ignoring sequence, time and the sealed box's randomness."""
        return replace(self, sequence=0, issued_at="") == replace(other, sequence=0, issued_at="")

    @classmethod
    def decode(cls, raw: bytes) -> IdentityDocument:
        """Parse untrusted bytes strictly; raise DocumentError naming the first broken rule."""
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"the document has {len(raw)} bytes, more than the limit of {MAX_DOCUMENT_BYTES}")
        try:
            value = bounded_json.loads(raw, max_depth=MAX_DEPTH)
        except bounded_json.DepthError as err:
            raise DocumentError(f"the document is refused: {err}") from None
        except ValueError as err:
            raise DocumentError("the document is not UTF-8 JSON") from err
        if not isinstance(value, dict):
            raise DocumentError("the document is not a JSON object")
        missing, unknown = _FIELDS - set(value), set(value) - _FIELDS
        if missing or unknown:
            raise DocumentError(
                "the document's fields differ from the schema"
                + (f"; missing: {', '.join(sorted(missing))}" if missing else "")
                + (f"; unknown: {', '.join(sorted(unknown)[:5])}" if unknown else "")
            )
        if value["schema"] != SCHEMA:
            raise DocumentError(f"unsupported schema {str(value['schema'])[:80]!r}, expected {SCHEMA!r}")
        if canonical_json(value) != raw:
            raise DocumentError("the document is not in canonical encoding")
        try:
            sealed = None if value["kubeconfig"] is None else SealedBox.from_json(value["kubeconfig"])
        except SealError as err:
            raise DocumentError(f"kubeconfig: {err}") from err
        document = cls(
            publisher=_expect(value, "publisher", str),
            sequence=_expect(value, "sequence", int),
            issued_at=_expect(value, "issuedAt", str),
            tombstone=_expect(value, "tombstone", bool),
            name=_expect(value, "name", str),
            description=_expect(value, "description", str),
            url=_expect(value, "url", str),
            categories=tuple(_expect_list(value, "categories")),
            addresses=tuple(_expect_list(value, "addresses")),
            kubernetes_version=_expect(value, "kubernetesVersion", str),
            kubeconfig=sealed,
        )
        validate(document)
        return document


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _expect(value: dict[str, Any], key: str, kind: type) -> Any:
    item = value[key]
    # bool is an int in Python: a sequence of `true` must not pass as 1.
    if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
        raise DocumentError(f"{key} must be a {kind.__name__}")
    return item


def _expect_list(value: dict[str, Any], key: str) -> list[str]:
    items = value[key]
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise DocumentError(f"{key} must be a list of strings")
    return items


def validate(document: IdentityDocument) -> None:
    """Check every rule of the schema; raise DocumentError naming the first that fails."""
    if not PEER_ID_RE.fullmatch(document.publisher):
        raise DocumentError("publisher is not a libp2p peer id")
    if not 0 <= document.sequence <= MAX_SEQUENCE:
        raise DocumentError(f"sequence must be between 0 and {MAX_SEQUENCE}")
    if not _RFC3339_UTC.fullmatch(document.issued_at):
        raise DocumentError("issuedAt must be an RFC 3339 UTC time such as 2026-01-31T12:00:00Z")
    if document.tombstone:
        if document.name or document.description or document.url or document.categories or document.addresses:
            raise DocumentError("a tombstone carries no identity fields")
        if document.kubeconfig is not None:
            raise DocumentError("a tombstone carries no kubeconfig")
        return
    _check_text("name", document.name, MAX_NAME, required=True)
    _check_text("description", document.description, MAX_DESCRIPTION)
    if document.url:
        check_url(document.url)
    if len(document.categories) > MAX_CATEGORIES:
        raise DocumentError(f"at most {MAX_CATEGORIES} categories")
    for category in document.categories:
        _check_text("category", category, MAX_CATEGORY, required=True)
    if len(set(document.categories)) != len(document.categories):
        raise DocumentError("categories must be unique")
    if len(document.addresses) > MAX_ADDRESSES:
        raise DocumentError(f"at most {MAX_ADDRESSES} addresses")
    for address in document.addresses:
        if not address.startswith("/") or len(address) > MAX_ADDRESS or any(ch.isspace() for ch in address):
            raise DocumentError("addresses must be multiaddrs")
    _check_text("kubernetesVersion", document.kubernetes_version, MAX_VERSION)


def check_url(url: str) -> None:
    """An http or https URL naming a host, as the Identity and Peer CRDs' pattern says; else DocumentError."""
    _check_text("url", url, MAX_URL)
    try:
        host = urlparse(url).hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if not _URL_RE.fullmatch(url) or not host:
        raise DocumentError("url must be an http or https URL")


def _check_text(name: str, text: str, limit: int, *, required: bool = False) -> None:
    if required and not text.strip():
        raise DocumentError(f"{name} must not be empty")
    if len(text) > limit:
        raise DocumentError(f"{name} is longer than {limit} characters")
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise DocumentError(f"{name} contains control characters")
