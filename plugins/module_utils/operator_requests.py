# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""What a role asks of the operator that runs it: a requeue after a delay, and a custom metric.

Private to the collection: may change without notice.

operator-sdk's roles ask with ``operator_sdk.util.requeue_after`` and
``osdk_metric``; the requeue_after and osdk_metric modules keep their options.
Their action plugins answer on the controller, where the operator reads the
run's event stream; the modules answer where no operator listens (and
osdk_metric posts to an address when given one). Both read the request here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+")
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = ("ansible_operator_", "cluster_discovery_operator_")
_TYPES = ("counter", "gauge", "histogram", "summary")


def requeue_argspec() -> dict[str, Any]:
    return {"time": {"type": "str", "required": True}}


def duration_seconds(text: str) -> float:
    """Seconds of a non-negative Go duration; ValueError naming the problem otherwise.

    Go's time.ParseDuration grammar, as the operator reads the period requeue_after returns (its
    durations.py): an optional sign, then "0" or number-unit pairs. A negative duration means nothing
    for a requeue and is refused.
    """
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    if unsigned != "0" and (not unsigned or not _DURATION.fullmatch(unsigned)):
        raise ValueError(f"time must be a duration such as 30s, 5m or 1h30m (units ns, us, ms, s, m, h), not {text!r}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _COMPONENT.findall(unsigned))
    if text.startswith("-") and seconds > 0:
        raise ValueError(f"time must not be negative, not {text!r}")
    return seconds


def requeue_request(params: Mapping[str, Any]) -> dict[str, Any]:
    """requeue_after's result: the period as given and its seconds."""
    period = str(params["time"]).strip()
    return {"period": period, "seconds": duration_seconds(period)}


def metric_argspec() -> dict[str, Any]:
    return {
        "name": {"type": "str", "required": True},
        "description": {"type": "str", "required": True},
        "address": {"type": "str"},
        "labels": {"type": "dict", "default": {}},
        "counter": {
            "type": "dict",
            "options": {"increment": {"type": "bool"}, "add": {"type": "float"}},
        },
        "gauge": {
            "type": "dict",
            "options": {
                "set": {"type": "float"},
                "increment": {"type": "bool"},
                "decrement": {"type": "bool"},
                "add": {"type": "float"},
                "subtract": {"type": "float"},
                "set_to_current_time": {"type": "bool"},
            },
        },
        "histogram": {"type": "dict", "options": {"observe": {"type": "float"}}},
        "summary": {"type": "dict", "options": {"observe": {"type": "float"}}},
    }


def build_metric(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request from module parameters (unset suboptions dropped); ValueError when it is not one metric."""
    name = params["name"]
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"name {name!r} is not a valid Prometheus metric name")
    if name.startswith(_RESERVED):
        raise ValueError(f"name {name!r} uses a prefix reserved for the operator's own metrics")
    given = [kind for kind in _TYPES if params.get(kind) is not None]
    if len(given) != 1:
        raise ValueError(
            "exactly one of counter, gauge, histogram or summary is required"
            + (", not {}".format(", ".join(given)) if given else "")
        )
    kind = given[0]
    action = {key: value for key, value in params[kind].items() if value is not None and value is not False}
    if kind == "counter" and action.get("add", 0) < 0:
        raise ValueError("counter metrics cannot decrease in value")
    labels = {}
    for key, value in (params.get("labels") or {}).items():
        if not _LABEL_NAME.fullmatch(str(key)) or str(key).startswith("__"):
            raise ValueError(f"label name {key!r} is not a valid Prometheus label name")
        labels[str(key)] = str(value)
    metric: dict[str, Any] = {"name": name, "description": params["description"], kind: action}
    if labels:
        metric["labels"] = labels
    return metric
