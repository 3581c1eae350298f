"""Who is asking, what their token lets them do, and the ways a use case says no.

The exceptions are named for conditions; the HTTP layer maps each to its status
(``api/errors.py``), the CLI and the demo show their messages as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from printfleet.cloud.store import Role, UserRecord

ALL_SCOPES = ("read", "write", "admin")

_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.OWNER: 2}


class Scope(StrEnum):
    """What an API token may do."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class Forbidden(Exception):  # noqa: N818 - reads as the HTTP status it becomes
    """The user may see the thing but not do this to it (403)."""


class InvalidRequest(ValueError):  # noqa: N818 - reads as the HTTP status it becomes
    """The request makes no sense (422), with a message that says why."""


class TokenExpired(Exception):  # noqa: N818 - reads as the condition
    """A bearer token that worked once but has passed its expiry (401, saying so)."""


class PrinterUnreachable(Exception):  # noqa: N818 - reads as the condition
    """The command was not sent: no fresh evidence that the printer can be reached (503)."""


class RegistrationClosed(Exception):  # noqa: N818 - reads as the condition
    """Accounts are not open to everyone here (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user: UserRecord
    scopes: frozenset[str]

    def require(self, scope: Scope) -> None:
        """Raise Forbidden unless the token carries ``scope``."""
        if scope.value not in self.scopes and Scope.ADMIN.value not in self.scopes:
            msg = f"this token lacks the {scope.value!r} scope"
            raise Forbidden(msg)


def at_least(role: Role, minimum: Role) -> bool:
    """Whether ``role`` may do what ``minimum`` may (owner > operator > viewer)."""
    return _RANK[role] >= _RANK[minimum]
