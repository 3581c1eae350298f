"""Ids, token digests and the clock the store stamps its rows with."""

from __future__ import annotations

import hashlib
import time

import uuid_utils


def wall_clock_ms() -> int:
    """The cloud's clock: Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A fresh time-ordered id (UUIDv7), as jobs, files and the protocol's messages use."""
    return str(uuid_utils.uuid7())


def token_digest(token: str) -> str:
    """What the store keeps of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()
