"""What the printer agent tells an observer: every command it judged, every fault it latched
and every fault a person cleared. Production agents tell nobody (:class:`NoObserver`); the chaos
harness's history listens to check S1 to S9 against what each printer decided."""

from dataclasses import dataclass
from typing import Protocol

from printfleet.protocol.gate import GateDecision
from printfleet.protocol.messages import CommandBase

__all__ = ["AgentObserver", "CommandJudged", "NoObserver"]


@dataclass(frozen=True, slots=True)
class CommandJudged:
    """A command that reached the printer, and what its gate made of it."""

    printer_id: str
    command: CommandBase | None
    """The decoded command; None when it could not be decoded."""
    decision: GateDecision


class AgentObserver(Protocol):
    """Who wants to know what a printer's agent decided. Told after the fact, under the agent's
    lock; must not block or raise."""

    def command_judged(self, judged: CommandJudged) -> None:
        """The gate accepted or rejected a command from the cloud."""
        ...

    def thermal_fault(self, printer_id: str, fault: str) -> None:
        """Thermal protection found ``fault``; the core latches it next."""
        ...

    def fault_cleared(self, printer_id: str) -> None:
        """A person cleared the printer's latched fault."""
        ...


class NoObserver:
    """Nobody listens (a production agent's default)."""

    def command_judged(self, judged: CommandJudged) -> None:
        """Ignored."""

    def thermal_fault(self, printer_id: str, fault: str) -> None:
        """Ignored."""

    def fault_cleared(self, printer_id: str) -> None:
        """Ignored."""
