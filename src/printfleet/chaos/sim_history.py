"""What happened in a simulated fleet, for the checker: physical starts with the truth at that
instant, the commands the cloud issued with the store's truth, intents, ends and notifications.
"""

from dataclasses import dataclass, field
from typing import Literal

from printfleet.protocol.dispatch_views import Requirements
from printfleet.protocol.lifecycle import JobState

LOADOUT_GRACE_MS = 10_000
"""A loadout changed this recently may not have reached the cloud yet: a report from before the
change is still fresh enough to start on (every report is at most ``report_max_age_ms`` old and
arrives within a few seconds). A start that fits the loadout of this window fits its job."""


@dataclass(frozen=True, slots=True)
class PhysicalStart:
    """A print that physically began, with the truth at that instant."""

    at: int
    printer_id: str
    job_id: str
    source: str
    command_id: str | None
    issued_at: int | None
    not_after: int | None
    plate_occupied: bool
    printer_busy: bool
    fault_latched: bool
    plate_check: bool
    """The printer's own plate-check setting at that instant."""
    link_verified_at_issue: bool | None
    has_plate_sensor: bool = True
    plate_confirmed: bool = False
    """A person confirmed the plate clear (at the screen or remotely) since the last start."""


@dataclass(frozen=True, slots=True)
class IssuedCommand:
    """A stage or start the cloud issued, with the store's truth at that instant (S1, S5)."""

    at: int
    command_id: str
    kind: Literal["stage", "start"]
    printer_id: str
    job_id: str
    submitter: str
    """Who asked for the job, as the user's request said (not as the cloud recorded it)."""
    submitter_may_operate: bool
    """Whether the submitter owned the printer or held an operator share at that instant."""
    desired_plate_check: bool
    """The owner's plate-check setting at that instant."""
    sent: bool
    """Whether it left the cloud (a publish refused for want of link evidence did not)."""
    file_url: str | None = None
    """For a stage: the link to the submitter's file that the printer was handed."""
    fits: bool = True
    """Whether the printer was what the job asked for (its printer, model or pool) and had its
    material and nozzle, as the printer's loadout was then or within ``LOADOUT_GRACE_MS``."""
    passed_over: tuple[str, ...] = ()
    """For a start: waiting jobs of higher priority that could have used this printer."""


@dataclass(frozen=True, slots=True)
class Ask:
    """What a user asked for: where the job may print, what it needs, how urgent it is."""

    printer_id: str | None = None
    model: str | None = None
    pool_id: str | None = None
    requirements: Requirements = field(default_factory=Requirements)
    priority: int = 0


@dataclass(slots=True)
class HeatUp:
    """A printer heating up for a print, from its physical start until it is at temperature
    (or the print stops sooner)."""

    printer_id: str
    job_id: str
    command_id: str | None
    """The cloud's start command; None for a start at the printer."""
    start: int
    until: int

    def at(self, now: int) -> bool:
        """Heating at true time ``now``."""
        return self.start <= now < self.until


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job a user created, and how it ended."""

    job_id: str
    created_at: int
    start_by: int
    state: JobState
    notified: bool


@dataclass(slots=True)
class History:
    """Everything the checker needs: intents, starts, heats, ends, notifications."""

    starts: list[PhysicalStart] = field(default_factory=list)
    intents: dict[str, int] = field(default_factory=dict)
    """Job id -> creation time, for every job a user submitted."""
    terminal: dict[str, JobState] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)
    heated_while_faulted: list[tuple[int, str]] = field(default_factory=list)
    commands_issued: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    """Command id -> (issued_at, not_after, link verified when issued)."""
    submitters: dict[str, str] = field(default_factory=dict)
    """Job id -> the user who asked for it."""
    issued: dict[str, IssuedCommand] = field(default_factory=dict)
    """Command id -> every stage and start, with who could operate and what the owner wanted."""
    tenancy_changes: int = 0
    """Shares granted or revoked, plate checks turned on or off: how much the store moved."""
    checks_on_while_away: int = 0
    """Plate checks turned back on while the printer, its own check off, could not hear it."""
    asks: dict[str, Ask] = field(default_factory=dict)
    """Job id -> where it may print, what it needs, its priority, as the user asked."""
    heat_ups: list[HeatUp] = field(default_factory=list)
    cancelled_at: dict[str, int] = field(default_factory=dict)
    """Job id -> when its user cancelled it (its heat-up, if any, is being stopped)."""
    max_heating: int | None = None
    """The farm's heat-up cap, as its owner set it (None: no cap)."""
    loadout_changes: int = 0
    """Materials swapped and nozzles changed at printers."""
