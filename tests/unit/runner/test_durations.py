"""Go durations: the grammar of time.ParseDuration, used for periods and requeue_after."""

from __future__ import annotations

import pytest
from cluster_discovery_operator.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="minutes-and-seconds"),
        pytest.param("1.5h", 5400.0, id="fractional-hours"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("10us", 1e-5, id="microseconds"),
        pytest.param("-2s", -2.0, id="negative"),
        pytest.param("1h0m0s", 3600.0, id="zero-components"),
    ],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    """Every form Go accepts gives its value in seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("", "invalid duration", id="empty"),
        pytest.param("30", "missing unit", id="no-unit"),
        pytest.param("5x", "invalid duration", id="unknown-unit"),
        pytest.param("1 m", "invalid duration", id="space"),
        pytest.param("m", "invalid duration", id="unit-only"),
    ],
)
def test_malformed_durations_fail_with_gos_wording(text: str, fragment: str) -> None:
    """What Go rejects is rejected with a message naming the text."""
    with pytest.raises(DurationError, match=fragment):
        parse_duration(text)


def test_durations_format_for_humans() -> None:
    """Logs show short forms."""
    assert [format_duration(s) for s in (0.25, 5, 90, 3725)] == ["250ms", "5s", "1m30s", "1h2m5s"]
