"""requeue_after accepts Go durations (operator-sdk's regex accepted only [hms0-9]) and rejects the rest."""

from __future__ import annotations

import pytest
from ansible_collections.peerdiscovery.cluster_discovery.plugins.modules.requeue_after import duration_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("5s", 5.0), ("30m", 1800.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "-5s", "5 s", "tomorrow", "1d"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration such as"):
        duration_seconds(text)
