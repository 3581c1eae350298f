"""MQTT topic names, under one configurable prefix (``printfleet/v1`` by default)."""

from dataclasses import dataclass

DEFAULT_PREFIX = "printfleet/v1"


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic printfleet publishes or subscribes to."""

    prefix: str = DEFAULT_PREFIX

    def commands(self, printer_id: str) -> str:
        """Cloud -> printer commands (QoS 1, never retained)."""
        return f"{self.prefix}/printers/{printer_id}/commands"

    def events(self, printer_id: str) -> str:
        """Printer -> cloud events (QoS 1)."""
        return f"{self.prefix}/printers/{printer_id}/events"

    def telemetry(self, printer_id: str) -> str:
        """Printer -> cloud periodic telemetry (QoS 0)."""
        return f"{self.prefix}/printers/{printer_id}/telemetry"

    def presence(self, printer_id: str) -> str:
        """Retained presence; the printer's Will says offline."""
        return f"{self.prefix}/printers/{printer_id}/presence"

    def probe(self, instance: str) -> str:
        """The cloud's end-to-end probe through the broker."""
        return f"{self.prefix}/cloud/{instance}/probe"

    def all_printers(self, kind: str) -> str:
        """A wildcard over every printer's ``kind`` topic (events, telemetry, presence)."""
        return f"{self.prefix}/printers/+/{kind}"

    def printer_of(self, topic: str) -> str | None:
        """The printer id in a printer topic, or None if ``topic`` is not one."""
        head = f"{self.prefix}/printers/"
        if not topic.startswith(head):
            return None
        printer_id, _, _ = topic[len(head) :].partition("/")
        return printer_id or None
