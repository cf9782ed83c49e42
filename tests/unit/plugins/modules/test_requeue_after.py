"""requeue_after accepts Go durations (operator-sdk's regex accepted only [hms0-9]) and rejects the rest."""

from __future__ import annotations

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.operator_requests import duration_seconds
from cluster_discovery_operator.durations import DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("5s", 5.0), ("30m", 1800.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "5 s", "tomorrow", "1d", "+", "--5s", "5s-"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration such as"):
        duration_seconds(text)


def test_a_negative_duration_is_refused_as_such() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        duration_seconds("-5s")


GO_DURATIONS = ["0", "+0", "-0", "5s", "+5s", "1h30m", "1.5h", ".5s", "500ms", "1us", "1\u00b5s", "2h45m0.5s"]
NOT_DURATIONS = ["", "10", "5 s", "tomorrow", "1d", "+", "--5s", "5s-", "1.2.3s"]


@pytest.mark.parametrize("text", GO_DURATIONS)
def test_the_module_reads_a_duration_as_the_operator_does(text: str) -> None:
    # The operator parses the period this module returns with its own Go-duration reader: they must agree.
    assert duration_seconds(text) == pytest.approx(parse_duration(text))


@pytest.mark.parametrize("text", NOT_DURATIONS)
def test_the_module_refuses_what_the_operator_refuses(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)
    with pytest.raises(ValueError):
        duration_seconds(text)
