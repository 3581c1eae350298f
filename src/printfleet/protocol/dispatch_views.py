"""What dispatch planning (:mod:`printfleet.protocol.dispatch`) reads: jobs as the store holds them,
printers as the cloud last heard them, the owner's safety settings, the evidence that the path to
the printers works, and the policy's limits.
"""

from dataclasses import dataclass

from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import PlateStatus, PrinterStatus


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


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """The newest end-to-end probe round trip through the broker (S8)."""

    verified_at: int | None
    probe_interval_ms: int

    def verified(self, now: int) -> bool:
        """Whether the path to the printers was proven within the last probe interval."""
        return self.verified_at is not None and now - self.verified_at <= self.probe_interval_ms
