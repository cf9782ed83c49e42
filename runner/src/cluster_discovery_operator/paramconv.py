"""snake_case conversion of spec keys, exactly as operator-sdk does it.

operator-sdk hands a CR's spec to Ansible with every key converted by
``internal/ansible/paramconv.ToSnake`` (itself derived from iancoleman/strcase).
Roles written for operator-sdk name their defaults after that output, so we
reproduce its rules rather than a "nicer" conversion, quirks included:

- acronyms are words: ``JSONData`` -> ``json_data``;
- ``HTTP``, ``URL`` and ``IP`` (and their plurals ending in ``s``) are split out
  first, so ``egressIPs`` -> ``egress_ips`` and ``IPFSVersion`` -> ``ip_fs_version``
  (not ``ipfs_version``);
- a key starting with a capital letter gets a leading underscore
  (``ThisKey`` -> ``_this_key``) unless its first word is one of those special
  words (``URL`` -> ``url``);
- digits glued between letters become words: ``size8k9b`` is split as Go does.

Go iterates its special-word map in random order; we use a fixed order (HTTP,
URL, IP), which gives the same result for every key where the order matters at
all in practice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NUMBER_SEQUENCE = re.compile(r"([a-zA-Z])(\d+)([a-zA-Z](\d+))")
_WORD_MAPPING: dict[str, str] = {"http": "HTTP", "url": "URL", "ip": "IP"}


def _is_upper(char: str) -> bool:
    return "A" <= char <= "Z"


def _is_lower(char: str) -> bool:
    return "a" <= char <= "z"


def _add_word_boundaries_to_numbers(text: str) -> str:
    return _NUMBER_SEQUENCE.sub(r"\1 \2 \3", text)


def _preprocess_word_mapping(value: str) -> str:
    """Surround the first occurrence of each special word (or its plural) with underscores."""
    for word in _WORD_MAPPING.values():
        idx = value.find(word)
        if idx < 0:
            continue
        end = idx + len(word)
        if end - 1 == len(value) - 1:
            value = value[:idx] + "_" + value[idx:]
        elif value[end] == "s":
            if end == len(value) - 1:
                value = value[:idx] + "_" + value[idx:end] + "S"
            elif idx == 0:
                value = value[:end] + "S" + "_" + value[end + 1 :]
            else:
                value = value[:idx] + "_" + value[idx:end] + "S" + "_" + value[end + 1 :]
        elif idx == 0:
            value = value[:end] + "_" + value[end:]
        else:
            value = value[:idx] + "_" + value[idx:end] + "_" + value[end:]
    return value


def to_snake(key: str) -> str:
    """Convert one key the way operator-sdk's ``paramconv.ToSnake`` does."""
    text = _add_word_boundaries_to_numbers(key).strip(" ")
    if not text:
        return text
    prefix = "_" if _is_upper(text[0]) else ""
    # Special words are only looked for in mixed-case keys: in an all-capitals
    # key such as SKIP_IP they would split real words.
    if text.upper() != text:
        text = _preprocess_word_mapping(text)
    bits: list[str] = []
    current = ""
    real_index = -1
    for index, char in enumerate(text):
        real_index += 1
        next_case_changes = False
        if index + 1 < len(text):
            following = text[index + 1]
            next_case_changes = (_is_upper(char) and _is_lower(following)) or (_is_lower(char) and _is_upper(following))
        if real_index > 0 and current[-1] != "_" and next_case_changes:
            if _is_upper(char):
                bits.append(current.lower())
                current = char
                real_index = 0
            elif _is_lower(char):
                bits.append((current + char).lower())
                current = ""
                real_index = -1
        elif char in " _-":
            bits.append(current.lower())
            current = ""
            real_index = -1
        else:
            current += char
    bits.append(current.lower())
    joined = "_".join(bits)
    if bits[0] in _WORD_MAPPING:
        return joined
    return prefix + joined


def _convert(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {to_snake(str(k)): _convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_convert(item) for item in value]
    return value


def map_to_snake(values: Mapping[str, Any]) -> dict[str, Any]:
    """Convert every key, recursively (lists of objects included), as operator-sdk's MapToSnake."""
    return {to_snake(str(key)): _convert(value) for key, value in values.items()}
