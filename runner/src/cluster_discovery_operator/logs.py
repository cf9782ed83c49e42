"""Structured logs: one event per line, JSON (default) or key=value.

Every line carries a timestamp, level, logger and message plus the context a
reader filters on: kind, namespace, name and the reconcile id (the ansible-runner
ident of the run, so a log line leads straight to its artifact folder). Context
is passed with ``logger.info("msg", extra=fields(kind=..., name=...))`` rather
than formatted into the message, so tools can select on it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_FIELDS_ATTRIBUTE = "fields"


def fields(**values: Any) -> dict[str, Any]:
    """Context for a log call: ``log.info("reconciled", extra=fields(kind=k, name=n))``."""
    return {_FIELDS_ATTRIBUTE: {k: v for k, v in values.items() if v is not None}}


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    values: dict[str, Any] = {}
    extra = getattr(record, _FIELDS_ATTRIBUTE, None)
    if isinstance(extra, dict):
        values.update(extra)
    for key, value in record.__dict__.items():
        if key not in _RESERVED and key != _FIELDS_ATTRIBUTE and not key.startswith("_"):
            values[key] = value
    return values


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_record_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _kv_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_kv_value(record.getMessage())}",
        ]
        parts.extend(f"{key}={_kv_value(value)}" for key, value in _record_fields(record).items())
        if record.exc_info:
            parts.append(f"exception={_kv_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure(*, level: str = "info", fmt: str = "json") -> None:
    """Send every log line of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The client libraries are chatty at INFO and say nothing a reader of our logs needs.
    for noisy in ("urllib3", "kubernetes", "ansible-runner"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # urllib3 warns at each retry of a request; the caller reports the outcome (once per change of state), and a
    # node that is away for a minute would otherwise fill the log with one warning every two seconds.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # A thread that dies of an exception would otherwise print a bare traceback between the JSON lines.
    threading.excepthook = _log_thread_death


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "unknown"
    logging.getLogger(__name__).error(
        "thread stopped by an unexpected error",
        extra=fields(thread=thread),
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
