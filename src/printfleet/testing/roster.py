"""``MemoryRoster``: the dispatcher's ``PrinterRoster`` in memory, for tests and the chaos harness.

Shares and settings change under it as a person's would in the store: the dispatcher reads the
roster afresh every planning round, so a change counts from the next round on.
"""

from collections.abc import Mapping
from dataclasses import replace

from printfleet.cloud.dispatch.dispatcher import RosterEntry
from printfleet.protocol.dispatch import SafetySettings


class MemoryRoster:
    """Printers by id: model, who may operate each, desired safety settings, pools, wear."""

    def __init__(self, entries: Mapping[str, RosterEntry] | None = None) -> None:
        self.entries: dict[str, RosterEntry] = dict(entries or {})
        self.audit_log: list[tuple[str, str, str | None]] = []

    def add(self, printer_id: str, model: str, *operators: str) -> None:
        """A printer its operators (the first is its owner) may print on; plate check on."""
        self.entries[printer_id] = RosterEntry(model, frozenset(operators), SafetySettings())

    def set_operators(self, printer_id: str, operators: frozenset[str]) -> None:
        """Share or revoke: these users, and no others, may operate the printer from now on."""
        self.entries[printer_id] = replace(self.entries[printer_id], operators=operators)

    def set_pools(self, printer_id: str, pools: frozenset[str]) -> None:
        """The printer belongs to these pools, and no others, from now on."""
        self.entries[printer_id] = replace(self.entries[printer_id], pools=pools)

    def set_print_hours(self, printer_id: str, hours: float) -> None:
        """The printer has printed this many hours (the store counts them)."""
        self.entries[printer_id] = replace(self.entries[printer_id], print_hours=hours)

    def set_plate_check(self, printer_id: str, *, enabled: bool) -> None:
        """The owner changes the desired plate check."""
        desired = SafetySettings(plate_check=enabled)
        self.entries[printer_id] = replace(self.entries[printer_id], desired=desired)

    async def roster(self) -> dict[str, RosterEntry]:
        """A copy: the dispatcher's round sees one consistent roster."""
        return dict(self.entries)

    async def audit(
        self, action: str, printer_id: str, *, command_id: str | None, detail: str
    ) -> None:
        """Kept for tests to read."""
        self.audit_log.append((action, printer_id, command_id))
