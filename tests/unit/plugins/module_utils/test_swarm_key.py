"""Swarm keys: generation, parsing, validation and fingerprints.

Covers plugins/module_utils/swarm_key.py: the PSK v1 text kubo reads as
swarm.key, every way a key can be malformed (each named by line and rule, the
key never echoed), and the fingerprint's stability. No network.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.swarm_key import (
    RULE_ENCODING,
    RULE_HEADER,
    RULE_LENGTH,
    RULE_NON_HEX,
    RULE_TEXT,
    RULE_TRAILING,
    SwarmKey,
    SwarmKeyError,
    fingerprint,
    from_secret_value,
    generate,
    parse,
    validate,
)

# The key of the seed's walkthrough (its Secret's base64 value, decoded).
SEED_SECRET_VALUE = (
    "L2tleS9zd2FybS9wc2svMS4wLjAvCi9iYXNlMTYvCjA4NDljN2NlNGNiODllZjIyODQyZGE1"
    "MjI5NWQ3ZjIxMDcyYmYxMjQzZmI2YjdlNTUwNjUzMzM5MmFkYWVhMGM="
)
SEED_HEX = "0849c7ce4cb89ef22842da52295d7f21072bf1243fb6b7e5506533392adaea0c"
VALID = f"/key/swarm/psk/1.0.0/\n/base16/\n{SEED_HEX}"


def test_a_generated_key_is_32_random_bytes_in_the_canonical_text() -> None:
    key = generate()
    assert len(key.key) == 32
    assert re.fullmatch(r"/key/swarm/psk/1\.0\.0/\n/base16/\n[0-9a-f]{64}", key.text)
    assert generate().key != key.key


def test_a_generated_key_parses_back_to_itself() -> None:
    key = generate()
    assert parse(key.text) == key
    assert from_secret_value(key.secret_value()) == key


def test_the_seed_key_parses_from_its_secret_value() -> None:
    key = from_secret_value(SEED_SECRET_VALUE)
    assert key.key.hex() == SEED_HEX
    assert key.text == VALID


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(VALID, id="canonical"),
        pytest.param(VALID + "\n", id="trailing-newline-as-kubo-files-have"),
        pytest.param(VALID.replace("\n", "\r\n") + "\r\n", id="crlf-line-ends"),
        pytest.param(
            VALID.upper().replace("/KEY/SWARM/PSK/1.0.0/", "/key/swarm/psk/1.0.0/").replace("/BASE16/", "/base16/"),
            id="uppercase-hex",
        ),
        pytest.param(VALID + "\n\n  \n", id="blank-lines-after-the-key"),
        pytest.param(VALID.encode(), id="bytes"),
    ],
)
def test_accepted_spellings_of_one_key_give_the_same_key(text: str | bytes) -> None:
    assert parse(text).key.hex() == SEED_HEX


@pytest.mark.parametrize(
    ("text", "line", "rule"),
    [
        pytest.param("", 1, RULE_TEXT, id="empty"),
        pytest.param("   \n", 1, RULE_TEXT, id="whitespace-only"),
        pytest.param(b"\xff\xfe" + VALID.encode(), 1, RULE_TEXT, id="not-ascii"),
        pytest.param(VALID.replace("1.0.0", "2.0.0"), 1, RULE_HEADER, id="wrong-header-version"),
        pytest.param(SEED_HEX, 1, RULE_HEADER, id="bare-hex-without-header"),
        pytest.param(" " + VALID, 1, RULE_HEADER, id="indented-header"),
        pytest.param("/key/swarm/psk/1.0.0/", 2, RULE_ENCODING, id="header-only"),
        pytest.param(VALID.replace("/base16/", "/base64/"), 2, RULE_ENCODING, id="base64-encoding"),
        pytest.param(VALID.replace("/base16/", "/bin/"), 2, RULE_ENCODING, id="bin-encoding"),
        pytest.param(VALID.replace("/base16/", "/base32/"), 2, RULE_ENCODING, id="unknown-encoding"),
        pytest.param(f"/key/swarm/psk/1.0.0/\n{SEED_HEX}", 2, RULE_ENCODING, id="key-where-encoding-belongs"),
        pytest.param("/key/swarm/psk/1.0.0/\n/base16/\n", 3, RULE_LENGTH, id="missing-key"),
        pytest.param(VALID[:-2], 3, RULE_LENGTH, id="short-key"),
        pytest.param(VALID + "00", 3, RULE_LENGTH, id="long-key"),
        pytest.param(VALID[:-1] + " ", 3, RULE_NON_HEX, id="trailing-space-inside-the-key"),
        pytest.param(VALID[:-1] + "g", 3, RULE_NON_HEX, id="non-hex-letter"),
        pytest.param(VALID + "\n" + SEED_HEX, 4, RULE_TRAILING, id="content-after-the-key"),
    ],
)
def test_each_malformed_kind_is_named_by_line_and_rule_without_echoing_the_key(
    text: str | bytes, line: int, rule: str
) -> None:
    with pytest.raises(SwarmKeyError) as caught:
        parse(text)
    error = caught.value
    assert (error.line, error.rule) == (line, rule)
    assert f"line {line} ({rule})" in error.msg
    assert error.fields == {"line": line, "rule": rule}
    for fragment in (SEED_HEX, SEED_HEX[:16], SEED_HEX[-16:], SEED_HEX.upper()[:16]):
        assert fragment not in str(error)


def test_the_non_hex_error_names_the_column() -> None:
    broken = VALID[:-64] + "0" * 9 + "x" + "0" * 54
    with pytest.raises(SwarmKeyError, match="column 10 is not a hexadecimal digit"):
        parse(broken)


def test_the_length_error_says_how_many_characters_were_found() -> None:
    with pytest.raises(SwarmKeyError, match="found 62"):
        parse(VALID[:-2])


def test_validate_returns_the_fingerprint_of_a_valid_key() -> None:
    assert validate(VALID) == parse(VALID).fingerprint


def test_the_fingerprint_is_sha256_of_the_key_bytes_shortened() -> None:
    expected = "sha256:" + hashlib.sha256(bytes.fromhex(SEED_HEX)).hexdigest()[:16]
    assert fingerprint(bytes.fromhex(SEED_HEX)) == expected
    assert parse(VALID).fingerprint == expected
    assert (
        parse(
            VALID.upper().replace("/KEY/SWARM/PSK/1.0.0/", "/key/swarm/psk/1.0.0/").replace("/BASE16/", "/base16/")
        ).fingerprint
        == expected
    )


def test_different_keys_have_different_fingerprints() -> None:
    assert generate().fingerprint != generate().fingerprint


def test_the_repr_of_a_key_shows_its_fingerprint_not_its_bytes() -> None:
    key = parse(VALID)
    assert SEED_HEX not in repr(key)
    assert key.fingerprint in repr(key)
    assert "key=" not in repr(key)


def test_sensitive_values_cover_every_form_the_key_takes() -> None:
    key = parse(VALID)
    values = key.sensitive_values()
    assert {VALID, SEED_HEX, SEED_HEX.upper(), SEED_SECRET_VALUE, base64.b64encode(key.key).decode()} <= values


def test_a_key_of_the_wrong_size_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SwarmKey(b"\x00" * 31)


def test_a_secret_value_that_is_not_base64_is_a_text_error() -> None:
    with pytest.raises(SwarmKeyError) as caught:
        from_secret_value("not base64 !!")
    assert caught.value.rule == RULE_TEXT
