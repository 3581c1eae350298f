"""Capability tokens kept out of logs: ``token=...`` in a logged URL becomes ``token=<redacted>``.

A printer fetches a staged file from ``/printer-files/{id}?expires=...&token=...``, and whoever
holds that link may fetch the file until it expires (an hour). uvicorn's access log (the cloud)
and httpx's request log (the agent) write such URLs whole, so both processes put
:class:`TokenRedaction` on those loggers: it rewrites each record before any handler, the
application's or a test's, formats it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

__all__ = ["REDACTED", "REDACTED_LOGGERS", "TokenRedaction", "redact", "redact_tokens_in_logs"]

REDACTED = "<redacted>"

REDACTED_LOGGERS = (
    "uvicorn.access",
    "uvicorn.error",
    "httpx",
    # httpcore logs through one logger per module; a filter on "httpcore" would not see them.
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
"""Loggers that write request URLs: the HTTP server's and the HTTP client's."""

# A query parameter named token or access_token, up to the next separator. Quotes and angle
# brackets end it too: a URL is often logged inside them.
_TOKEN = re.compile(r"(?i)(?<![A-Za-z0-9_])((?:access_)?token=)[^&;\s\"'<>#]+")


def redact(text: str) -> str:
    """``text`` with every ``token=`` value replaced by ``<redacted>``."""
    return _TOKEN.sub(rf"\g<1>{REDACTED}", text)


def _redacted_argument(value: object) -> object:
    if value is None or isinstance(value, int | float):
        return value  # numbers fill %d and %f, which a string would break
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class TokenRedaction(logging.Filter):
    """Rewrites a record's message and arguments with :func:`redact`; never drops one.

    Arguments are redacted one by one rather than the message formatted here: uvicorn's access
    formatter unpacks its five arguments by position.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_argument(argument) for argument in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redacted_argument(value) for key, value in record.args.items()}
        return True


_FILTER = TokenRedaction()


def redact_tokens_in_logs(loggers: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Put :class:`TokenRedaction` on ``loggers`` (once each; calling again changes nothing)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, TokenRedaction) for existing in logger.filters):
            logger.addFilter(_FILTER)
