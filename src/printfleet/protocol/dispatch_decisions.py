"""What dispatch planning (:mod:`printfleet.protocol.dispatch`) decides: one decision per job
(stage, start, query, expire, unassign, wait, cancel, withdraw) or per printer (apply its
owner's settings), each recorded by the cloud before it acts.
"""

from dataclasses import dataclass

from printfleet.protocol.dispatch_views import SafetySettings, WaitCode


@dataclass(frozen=True, slots=True)
class Stage:
    """Send a stage command for ``job_id`` to ``printer_id`` (record the assignment first)."""

    job_id: str
    printer_id: str


@dataclass(frozen=True, slots=True)
class Start:
    """Record the job as dispatched with a new command id and ``not_after``, then publish."""

    job_id: str
    printer_id: str
    not_after: int
    plate_check: bool = True
    """The owner's desired plate check, carried in the start itself (S5)."""


@dataclass(frozen=True, slots=True)
class QueryJournal:
    """Ask ``printer_id`` what it did about ``job_id``; never resend the start blindly."""

    job_id: str
    printer_id: str


@dataclass(frozen=True, slots=True)
class Expire:
    """The job's window closed before it could start; tell the submitter."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Unassign:
    """Forget a stalled staging on one printer, or a printer that no longer fits the job, so
    another may take it (a staged job goes back to the queue)."""

    job_id: str
    code: WaitCode | None = None
    """Why, when it is a wait of its own (the printer's loadout changed); None: no change."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlateNeeded:
    """A job waits on a printer whose plate needs a person's confirmation."""

    job_id: str
    printer_id: str


@dataclass(frozen=True, slots=True)
class CancelOnPrinter:
    """A cancelled job is still running on its printer: send the cancel (again)."""

    job_id: str
    printer_id: str


@dataclass(frozen=True, slots=True)
class Withdraw:
    """The submitter may no longer operate the printer the job waits on (S1).

    A job for any printer of a model goes back to the queue for another printer; a job for this
    very printer is rejected with ``reason``, and its submitter told.
    """

    job_id: str
    printer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """The job cannot start yet, and this is why: recorded so people and machines can see it
    (no command)."""

    job_id: str
    code: WaitCode
    """Why, for machines."""
    reason: str
    """Why, for people: names the printer and what releases the job."""


@dataclass(frozen=True, slots=True)
class ApplySettings:
    """Send a printer its desired safety settings: it reports others, or none yet (S5)."""

    printer_id: str
    settings: SafetySettings


JobDecision = (
    Stage
    | Start
    | QueryJournal
    | Expire
    | Unassign
    | PlateNeeded
    | CancelOnPrinter
    | Withdraw
    | Waiting
)
Decision = JobDecision | ApplySettings
