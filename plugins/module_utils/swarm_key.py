# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Swarm keys: the pre-shared key (PSK v1) that makes an IPFS swarm private.

Private to the collection: may change without notice.

The text format is the one kubo reads from ``$IPFS_PATH/swarm.key`` (go-libp2p
``core/pnet/codec.go``)::

    /key/swarm/psk/1.0.0/
    /base16/
    <64 hexadecimal characters: the 32 key bytes>

go-libp2p also reads ``/base64/`` and ``/bin/`` bodies; this collection writes
and reads only ``/base16/``, the form kubo's documentation and every known
generator use, so that one key has one text (and Secrets compare byte for byte).

Nothing here ever puts key material into a message: errors name the line and
the rule that failed (header, encoding, length, non-hex), never the content.
The fingerprint (SHA-256 of the 32 key bytes, shortened) is safe to print; a
user can reproduce it with ``tail -n1 swarm.key | xxd -r -p | sha256sum``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.errors import CollectionError

HEADER = "/key/swarm/psk/1.0.0/"
ENCODING_BASE16 = "/base16/"
# Encodings go-libp2p understands but this collection does not write or read.
OTHER_PSK_ENCODINGS = ("/base64/", "/bin/")
KEY_BYTES = 32
KEY_HEX_CHARS = 2 * KEY_BYTES
# 16 hex characters (64 bits) tell keys apart in logs and diffs; the full
# digest adds nothing a reader can compare by eye.
FINGERPRINT_HEX_CHARS = 16
FINGERPRINT_PREFIX = "sha256:"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

# The rules a key can break, as named in SwarmKeyError.rule.
RULE_TEXT = "text"
RULE_HEADER = "header"
RULE_ENCODING = "encoding"
RULE_LENGTH = "length"
RULE_NON_HEX = "non-hex"
RULE_TRAILING = "trailing"


class SwarmKeyError(CollectionError):
    """A swarm key breaks the PSK v1 format; ``line`` and ``rule`` say where and how (never what)."""

    def __init__(self, msg: str, *, line: int, rule: str) -> None:
        super().__init__(f"Malformed swarm key, line {line} ({rule}): {msg}", line=line, rule=rule)
        self.line = line
        self.rule = rule


@dataclass(frozen=True)
class SwarmKey:
    """A valid swarm key. ``repr`` hides the key so it cannot leak through logs or tracebacks."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a swarm key holds {KEY_BYTES} bytes, not {len(self.key)}")

    def __repr__(self) -> str:
        return f"SwarmKey(fingerprint={self.fingerprint!r})"

    @property
    def text(self) -> str:
        """The canonical swarm.key text (lowercase hex, no trailing newline)."""
        return f"{HEADER}\n{ENCODING_BASE16}\n{self.key.hex()}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key)

    def secret_value(self) -> str:
        """The text base64-encoded, as a Kubernetes Secret's ``data`` holds it."""
        return base64.b64encode(self.text.encode("ascii")).decode("ascii")

    def sensitive_values(self) -> set[str]:
        """Every form of this key that may appear in output, for Ansible's ``no_log_values``."""
        hex_lower = self.key.hex()
        return {self.text, hex_lower, hex_lower.upper(), self.secret_value(), base64.b64encode(self.key).decode()}


def generate() -> SwarmKey:
    """A new key from 32 bytes of the operating system's CSPRNG."""
    return SwarmKey(secrets.token_bytes(KEY_BYTES))


def fingerprint(key: bytes) -> str:
    """``sha256:`` and the first 16 hex characters of SHA-256 over the 32 key bytes."""
    return FINGERPRINT_PREFIX + hashlib.sha256(key).hexdigest()[:FINGERPRINT_HEX_CHARS]


def parse(data: str | bytes) -> SwarmKey:
    """Parse swarm.key text (``str`` or the raw bytes of a file or Secret).

    Accepts what go-libp2p accepts for ``/base16/`` keys, minus its leniency
    about trailing content: lines may end in ``\\n`` or ``\\r\\n``, the hex may
    be upper or lower case, and blank lines may follow the key; anything else
    after the key is an error rather than silently ignored.

    Raises:
        SwarmKeyError: naming the line and the rule broken, without the content.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise SwarmKeyError(
                "the key is not ASCII text (is it base64-encoded twice, or a /bin/ key?)", line=1, rule=RULE_TEXT
            ) from None
    else:
        text = data
    if not text.strip():
        raise SwarmKeyError("the key is empty", line=1, rule=RULE_TEXT)
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]

    if lines[0] != HEADER:
        raise SwarmKeyError(f"the first line must be exactly {HEADER}", line=1, rule=RULE_HEADER)
    if len(lines) < 2 or not lines[1]:
        raise SwarmKeyError(f"the encoding line is missing; expected {ENCODING_BASE16}", line=2, rule=RULE_ENCODING)
    if lines[1] in OTHER_PSK_ENCODINGS:
        raise SwarmKeyError(
            f"encoding {lines[1]} is valid for libp2p but this collection reads only {ENCODING_BASE16};"
            " re-encode the key as 64 hexadecimal characters",
            line=2,
            rule=RULE_ENCODING,
        )
    if lines[1] != ENCODING_BASE16:
        # Not echoed: a key pasted one line too high would be printed here.
        raise SwarmKeyError(f"the second line must be exactly {ENCODING_BASE16}", line=2, rule=RULE_ENCODING)

    body = lines[2] if len(lines) > 2 else ""
    if len(body) != KEY_HEX_CHARS:
        raise SwarmKeyError(
            f"the key must be {KEY_HEX_CHARS} hexadecimal characters ({KEY_BYTES} bytes), found {len(body)}",
            line=3,
            rule=RULE_LENGTH,
        )
    for column, char in enumerate(body, start=1):
        if char not in _HEX_DIGITS:
            raise SwarmKeyError(f"column {column} is not a hexadecimal digit", line=3, rule=RULE_NON_HEX)
    for number, extra in enumerate(lines[3:], start=4):
        if extra.strip():
            raise SwarmKeyError("unexpected content after the key", line=number, rule=RULE_TRAILING)
    return SwarmKey(bytes.fromhex(body))


def validate(data: str | bytes) -> str:
    """Check a key and return its fingerprint; raise SwarmKeyError when malformed."""
    return parse(data).fingerprint


def from_secret_value(value: str) -> SwarmKey:
    """Parse the base64 ``data`` value of a Secret."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise SwarmKeyError("the Secret's value is not valid base64", line=1, rule=RULE_TEXT) from None
    return parse(raw)
