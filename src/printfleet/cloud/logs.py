"""Structured logs for the cloud: one JSON object per line (``PRINTFLEET_LOG_FORMAT=json``).

Log calls that concern a job or a printer pass ``extra={"job_id": ..., "printer_id": ...}``;
this formatter puts those ids in their own fields, so a log pipeline can answer "everything about
this job" without parsing messages. It also masks capability tokens (``token=<redacted>``) in
every line, whichever logger wrote it; :func:`redact_tokens_in_logs` does so for the loggers
that write request URLs, whatever the format.
"""

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from printfleet.log_redaction import redact, redact_tokens_in_logs

__all__ = [
    "CONTEXT_FIELDS",
    "LOG_FORMAT_VARIABLE",
    "JsonLogFormatter",
    "redact_tokens_in_logs",
    "use_json_logs",
    "wants_json",
]

LOG_FORMAT_VARIABLE = "PRINTFLEET_LOG_FORMAT"
CONTEXT_FIELDS = ("job_id", "printer_id", "command_id", "user_id")
"""``extra=`` keys copied into each JSON line when a log call gives them."""


class JsonLogFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", [job_id, printer_id, ...], [exception]}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def wants_json(environ: dict[str, str] | None = None) -> bool:
    """Whether ``PRINTFLEET_LOG_FORMAT`` asks for JSON lines."""
    source = os.environ if environ is None else environ
    value = source.get(LOG_FORMAT_VARIABLE, "").strip().lower()
    if value not in {"", "json", "text"}:
        msg = f"{LOG_FORMAT_VARIABLE} is 'json' or 'text', not {value!r}"
        raise ValueError(msg)
    return value == "json"


def use_json_logs(stream: TextIO | None = None, *, level: int | None = None) -> None:
    """Make the root logger write JSON lines to ``stream`` (stderr), replacing its handlers."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
