"""The ``Retry-After`` header, read one way for every side that receives it.

Neutral ground: the SDK honours it from the cloud, and the cloud's webhook sender honours it
from receivers, so it lives in neither.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), or None if unusable.

    The header is either a non-negative integer of seconds or an HTTP date; a date in the past
    means "now" (0). ``now`` is the wall clock in seconds since the epoch (default: the real one).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; email.utils leaves "-0000" zones naive.
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    seconds = (when - datetime.fromtimestamp(current, tz=UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
