# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""JSON from the swarm, parsed only once its nesting is known to be shallow.

Private to the collection: may change without notice.

Python's parser recurses once per level: a few kilobytes of ``[[[[...`` raise
RecursionError, which is no ValueError and escapes every handler written for
bad input. The depth is therefore measured on the raw text first, in one
linear pass that knows JSON strings, and anything deeper than the caller's
schema can ever be is refused before ``json.loads`` sees it.
"""

from __future__ import annotations

import json
from typing import Any


class DepthError(ValueError):
    """The text nests deeper than allowed."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped; text need not be valid JSON)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(raw: bytes | str, *, max_depth: int) -> Any:
    """``json.loads`` of untrusted input; ValueError (DepthError, UnicodeDecodeError, JSONDecodeError) on any fault."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    if nesting_depth(text) > max_depth:
        raise DepthError(f"it nests deeper than {max_depth} levels")
    return json.loads(text)
