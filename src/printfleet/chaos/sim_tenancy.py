"""Tenants of a simulated fleet: who owns which printer, who it is shared with, what each owner
chose, and the roster port through which the cloud reads it.
"""

from dataclasses import dataclass, field
from typing import Literal, Protocol

from printfleet.protocol.dispatch import SafetySettings

ShareRole = Literal["operator", "viewer"]


@dataclass(slots=True)
class Tenancy:
    """The store's truth about printers and people; it changes between planning rounds.

    The cloud reads it through a :class:`Roster` at every planning round; the history records
    it, read directly, at every stage and start, so a cloud that misreads it is caught.
    """

    owners: dict[str, str]
    """Printer id -> its owner."""
    shares: dict[str, dict[str, ShareRole]] = field(default_factory=dict)
    """Printer id -> user -> role; a viewer may watch but not print."""
    desired: dict[str, SafetySettings] = field(default_factory=dict)
    """Printer id -> the safety settings its owner chose (plate check on unless turned off)."""
    pools: dict[str, frozenset[str]] = field(default_factory=dict)
    """Pool id -> the printers in it."""
    print_hours: dict[str, float] = field(default_factory=dict)
    """Printer id -> hours printed so far."""

    def pools_of(self, printer_id: str) -> frozenset[str]:
        """The pools the printer belongs to, now."""
        return frozenset(pool for pool, members in self.pools.items() if printer_id in members)

    def operators(self, printer_id: str) -> frozenset[str]:
        """The owner and every operator share, now."""
        shared = self.shares.get(printer_id, {})
        operators = {user for user, role in shared.items() if role == "operator"}
        return frozenset({self.owners[printer_id], *operators})

    def settings(self, printer_id: str) -> SafetySettings:
        """What the owner chose, now."""
        return self.desired.get(printer_id, SafetySettings())

    def may_operate(self, user: str, printer_id: str) -> bool:
        """Whether ``user`` may print on ``printer_id`` now."""
        return user in self.operators(printer_id)

    def share(self, printer_id: str, user: str, role: ShareRole) -> bool:
        """The owner shares the printer (or changes a share's role); False if nothing changed."""
        if user == self.owners[printer_id] or self.shares.get(printer_id, {}).get(user) == role:
            return False
        self.shares.setdefault(printer_id, {})[user] = role
        return True

    def revoke(self, printer_id: str, user: str) -> bool:
        """The owner takes a share back; False if there was none."""
        return self.shares.get(printer_id, {}).pop(user, None) is not None

    def set_plate_check(self, printer_id: str, *, enabled: bool) -> bool:
        """The owner turns the plate check on or off; False if it already was."""
        if self.settings(printer_id).plate_check == enabled:
            return False
        self.desired[printer_id] = SafetySettings(plate_check=enabled)
        return True


class Roster(Protocol):
    """What the cloud reads of the store about a printer at each planning round (a port: tests
    wrap it to show what the checker catches when the cloud misreads it)."""

    def operators(self, printer_id: str) -> frozenset[str]:
        """The users who may operate the printer now."""
        ...

    def settings(self, printer_id: str) -> SafetySettings:
        """The safety settings its owner chose."""
        ...
