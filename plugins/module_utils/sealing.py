# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Seal and open secrets so that only holders of a swarm key can read them.

Private to the collection: may change without notice.

The original controller published each cluster's kubeconfig in clear on the
swarm. Every member of a private swarm holds the same pre-shared key, so we
derive a content key from it (HKDF-SHA256, a distinct ``info`` per use so the
sealing key never equals the transport key) and seal with AES-256-GCM. The
associated data binds a sealed box to its publisher and sequence number: a
member cannot lift another member's box into a document of its own.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_CRYPTOGRAPHY = False

ALGORITHM = "HKDF-SHA256/AES-256-GCM"
NONCE_BYTES = 12  # the GCM standard nonce; random per seal, so never reused under one key in practice
_SALT = b"peerdiscovery.irt-saintexupery.com/v1"


class SealError(ValueError):
    """A sealed box could not be opened or is malformed (message never contains plaintext)."""


def derive_key(swarm_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` derived from the 32 bytes of a swarm key."""
    if len(swarm_key) != 32:
        raise ValueError("a swarm key has 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose.encode()).derive(swarm_key)


@dataclass(frozen=True)
class SealedBox:
    """AES-GCM output: a nonce and the ciphertext with its tag appended."""

    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "alg": ALGORITHM,
            "nonce": base64.b64encode(self.nonce).decode(),
            "ciphertext": base64.b64encode(self.ciphertext).decode(),
        }

    @classmethod
    def from_json(cls, value: Any) -> SealedBox:
        if not isinstance(value, dict) or set(value) != {"alg", "nonce", "ciphertext"}:
            raise SealError("a sealed box has exactly the keys alg, nonce and ciphertext")
        if value["alg"] != ALGORITHM:
            raise SealError(f"unsupported sealing algorithm {str(value['alg'])[:40]!r}")
        try:
            nonce = base64.b64decode(value["nonce"], validate=True)
            ciphertext = base64.b64decode(value["ciphertext"], validate=True)
        except (binascii.Error, TypeError, ValueError) as err:
            raise SealError("a sealed box's nonce and ciphertext are base64") from err
        if len(nonce) != NONCE_BYTES:
            raise SealError(f"a sealed box's nonce has {NONCE_BYTES} bytes")
        if len(ciphertext) < 16:
            raise SealError("a sealed box's ciphertext is shorter than its tag")
        return cls(nonce=nonce, ciphertext=ciphertext)


def _aad(publisher: str, sequence: int) -> bytes:
    return f"{publisher}\n{sequence}".encode()


def seal(swarm_key: bytes, plaintext: bytes, *, publisher: str, sequence: int) -> SealedBox:
    """Seal ``plaintext`` for every holder of ``swarm_key``, bound to publisher and sequence."""
    nonce = os.urandom(NONCE_BYTES)
    aead = AESGCM(derive_key(swarm_key, "kubeconfig"))
    return SealedBox(nonce=nonce, ciphertext=aead.encrypt(nonce, plaintext, _aad(publisher, sequence)))


def open_sealed(swarm_key: bytes, box: SealedBox, *, publisher: str, sequence: int) -> bytes:
    """Open a box sealed by :func:`seal`; raise SealError when key, publisher or sequence differ."""
    aead = AESGCM(derive_key(swarm_key, "kubeconfig"))
    try:
        return aead.decrypt(box.nonce, box.ciphertext, _aad(publisher, sequence))
    except InvalidTag as err:
        raise SealError("the sealed kubeconfig does not open with this swarm key for this publisher") from err
