"""Ids as people type them: a full id, or a unique start or end of one of at least 4 characters."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from printfleet.cli.failures import REFUSED, USAGE, CliError

ID_LENGTH = 36
"""A full id (a UUID in its text form)."""
MIN_PREFIX = 4


def full_id(text: str, kind: str, candidates: Callable[[], Iterable[str]]) -> str:
    """The full id of a `kind` ("job", "alert") from a full one, or from a unique start or end of
    one among `candidates()`, the caller's recent ones. Job ids are time-ordered, so recent ones
    share their first characters and differ at their end: the 8 characters the tables show (a
    printer's job) are enough. `candidates` is only called for a shortened id."""
    text = text.strip()
    if len(text) >= ID_LENGTH:
        return text
    if len(text) < MIN_PREFIX:
        raise CliError(f"{text!r}: give at least {MIN_PREFIX} characters of a {kind} id", USAGE)
    matches = [found for found in candidates() if found.startswith(text) or found.endswith(text)]
    if not matches:
        raise CliError(
            f"not found: none of your recent {kind}s has an id starting or ending {text!r}",
            REFUSED,
        )
    if len(matches) > 1:
        raise CliError(
            f"{text!r} starts or ends {len(matches)} {kind} ids ({', '.join(matches[:3])}, ...): "
            "give more characters",
            USAGE,
        )
    return matches[0]
