"""Counters a printer agent keeps, for tests and operators to read (``PrinterAgent.stats``)."""

from dataclasses import dataclass, field


@dataclass
class AgentStats:
    """Counters a test or an operator can read."""

    connects: int = 0
    commands: int = 0
    malformed: int = 0
    retained_dropped: int = 0
    events_dropped: int = 0
    telemetry_sent: int = 0
    reports_sent: int = 0
    faults: list[str] = field(default_factory=list)
