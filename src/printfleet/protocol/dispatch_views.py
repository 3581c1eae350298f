"""What dispatch planning (:mod:`printfleet.protocol.dispatch`) reads: jobs as the store holds them,
printers as the cloud last heard them, the owner's safety settings, the evidence that the path to
the printers works, and the policy's limits.
"""

from dataclasses import dataclass
from enum import StrEnum

from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import MaterialSlot, PlateStatus, PrinterStatus


class WaitCode(StrEnum):
    """Why a waiting job is not starting, for machines; its ``reason`` is the sentence for people.

    A job that expires keeps the code that held it last, so "expired" can say why.
    """

    NO_LINK = "no_link"
    """The path to the printers is not proven (S8): nothing is sent."""
    NEVER_REPORTED = "never_reported"
    OFFLINE = "offline"
    REPORT_STALE = "report_stale"
    LAN_ONLY = "lan_only"
    THERMAL_FAULT = "thermal_fault"
    BUSY = "busy"
    CLOCK_UNSYNCED = "clock_unsynced"
    SETTINGS_PENDING = "settings_pending"
    PLATE_OCCUPIED = "plate_occupied"
    PLATE_UNCONFIRMED = "plate_unconfirmed"
    PLATE_UNCHECKED = "plate_unchecked"
    MATERIAL_MISMATCH = "material_mismatch"
    """The job's printer (or every printer it may use) lacks its material or nozzle."""
    NO_PRINTER_FREE = "no_printer_free"
    """Some printer it may use matches, but none is free and ready now."""
    NO_PRINTER = "no_printer"
    """No printer of its model or pool that the submitter may operate exists."""
    HEAT_UP_SLOT = "heat_up_slot"
    """The farm's cap on simultaneous heat-ups is reached."""
    NOT_PERMITTED = "not_permitted"
    """The submitter may no longer operate the printer."""


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a job needs of a printer: from the file's slicer metadata, or set at submission.

    None means "any". A material matches a printer that has it loaded in any slot.
    """

    material: str | None = None
    nozzle_um: int | None = None


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    """The dispatcher's timing rules (milliseconds of cloud time)."""

    dispatch_window_ms: int = 30_000
    """A start's deadline lies at most this far ahead of its issue (S2)."""
    report_max_age_ms: int = 5_000
    """Printer state older than this is not evidence enough to dispatch on (S8)."""
    settle_margin_ms: int = 2_000
    """Wait this long past a start's deadline before asking the printer's journal."""
    query_interval_ms: int = 5_000
    """Ask a silent printer's journal again this often."""
    stage_retry_ms: int = 15_000
    """Re-send a stage (idempotent) if no staged report came back in this time."""
    min_start_lead_ms: int = 1_000
    """Do not issue a start whose deadline would be closer than this."""
    settings_retry_ms: int = 5_000
    """Re-send a printer's desired safety settings this often until it reports them (S5)."""
    max_heating: int | None = None
    """At most this many printers heating up at once (a farm's power circuit); None: no cap."""


@dataclass(frozen=True, slots=True)
class JobView:
    """What the dispatcher needs of one job (a row of the store)."""

    id: str
    created_at: int
    start_by: int
    """End of the submitter's start window (cloud ms); after it the job expires."""
    state: JobState
    sha256: str
    submitter: str = ""
    """The user who asked for the print: it may start only where this user may operate (S1)."""
    printer_id: str | None = None
    """The printer the submitter chose, or None for any printer of ``model``."""
    model: str | None = None
    assigned_printer: str | None = None
    stage_sent_at: int | None = None
    stage_command_id: str | None = None
    """The latest stage command; only its refusal can unassign the job."""
    command_id: str | None = None
    """The start command in flight (while dispatched)."""
    not_after: int | None = None
    last_query_at: int | None = None
    query_id: str | None = None
    """The journal query awaiting an answer; only its answer may settle the job."""
    cancel_sent_at: int | None = None
    """When a cancel last went to the printer (cancelled jobs the printer still runs)."""
    reason: str = ""
    wait: WaitCode | None = None
    """Why it waits, for machines (None when it is not waiting); ``reason`` says it in words."""
    priority: int = 0
    """Higher first; among equals, the older job first."""
    pool_id: str | None = None
    """Or: any printer of this pool that the submitter may operate (then ``model`` is None)."""
    requirements: Requirements = Requirements()


@dataclass(frozen=True, slots=True)
class SafetySettings:
    """A printer's settings that gate a start (S5): desired in the cloud, reported by the printer.

    The cloud starts nothing on a printer until the printer reports exactly what the cloud
    desires; a start also carries the desired plate check, so a printer that has not caught up
    with a check turned back on still applies it.
    """

    plate_check: bool = True


@dataclass(frozen=True, slots=True)
class PrinterView:
    """The cloud's latest knowledge of one printer: what it reported, and what the store says."""

    printer_id: str
    model: str
    online: bool
    reported_at: int
    """Cloud time of the latest state or telemetry: the printer's own ``sent_at`` if it had
    one, or the arrival time, whichever is earlier, so a report held in a queue looks old."""
    status: PrinterStatus
    plate: PlateStatus
    fault: str | None
    clock_synced: bool
    cloud_enabled: bool = True
    job_id: str | None = None
    staged: frozenset[str] = frozenset()
    reported: SafetySettings | None = None
    """The safety settings in the printer's latest state report; None until it sends one."""
    operators: frozenset[str] = frozenset()
    """From the store, at this planning round: the users who may operate the printer now (its
    owner and its operator shares). A job starts only where its submitter is one (S1)."""
    desired: SafetySettings = SafetySettings()
    """From the store: the safety settings its owner chose."""
    settings_sent_at: int | None = None
    """When the desired settings were last sent to the printer (the shell remembers it)."""
    slots: tuple[MaterialSlot, ...] = ()
    """What its filament slots hold, as its latest state report says (empty slots left out)."""
    materials: frozenset[str] = frozenset()
    """The materials loaded in any slot: the ``material`` of each of ``slots``."""
    simulated: bool = False
    """Its latest state report says it is a simulated printer (faults may be injected)."""
    nozzle_um: int | None = None
    """Its nozzle, as its latest state report says; None: not reported."""
    heating: bool = False
    """Heating up for a print, as its telemetry says (counts against the heat-up cap)."""
    pools: frozenset[str] = frozenset()
    """From the store: the pools it belongs to."""
    print_hours: float = 0.0
    """From the store: hours printed so far, so the least worn of equals goes first."""


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """The newest end-to-end probe round trip through the broker (S8)."""

    verified_at: int | None
    probe_interval_ms: int

    def verified(self, now: int) -> bool:
        """Whether the path to the printers was proven within the last probe interval."""
        return self.verified_at is not None and now - self.verified_at <= self.probe_interval_ms
