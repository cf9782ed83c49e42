"""Go duration strings (``30s``, ``1m30s``, ``1.5h``) as seconds.

operator-sdk reads ``reconcilePeriod``, the ``reconcile-period`` annotation and
``requeue_after``'s ``time`` with Go's ``time.ParseDuration``; accepting exactly
that grammar here means a manifest written for operator-sdk means the same thing
to us, and a typo fails the same way ("time: invalid duration ...").
"""

from __future__ import annotations

import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign, as Go accepts it
    "\u03bcs": 1e-6,  # Greek small letter mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that Go's time.ParseDuration would reject."""


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise DurationError with Go's wording otherwise."""
    if not isinstance(text, str):
        raise DurationError(f"time: invalid duration {text!r}: not a string")
    original = text
    sign = 1.0
    if text and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise DurationError(f'time: invalid duration "{original}"')
    total = 0.0
    position = 0
    while position < len(text):
        match = _COMPONENT.match(text, position)
        if match is None:
            if re.match(r"\d*\.?\d*$", text[position:]):
                raise DurationError(f'time: missing unit in duration "{original}"')
            raise DurationError(f'time: invalid duration "{original}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """A short human form (``1m30s``, ``250ms``) for logs and messages."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if secs or not parts:
        parts.append(f"{secs}s")
    return "".join(parts)
