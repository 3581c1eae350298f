"""The cloud's dispatch decisions, sans-IO: which job to stage, start, settle or expire, and when.

The cloud's store holds the jobs; its dispatcher loop loads them, asks :func:`plan` what to do,
records each decision *before* acting on it, and feeds printer events back through
:func:`apply_event`. Nothing here keeps a queue: a plan is computed afresh from the store, so
there is nothing that could pile up and be dumped onto printers later.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from printfleet.protocol.lifecycle import JobEvent, JobState, can, transition
from printfleet.protocol.messages import (
    AckEvent,
    Event,
    JobEndedEvent,
    JobOutcome,
    JobStartedEvent,
    JournalReportEvent,
    JournalStatus,
    PlateStatus,
    PrinterStateEvent,
    PrinterStatus,
    RejectedEvent,
    StagedEvent,
)
from printfleet.protocol.reasons import Reason, is_transient


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
    safeguards: bool = True
    """Only the chaos harness's ``--safeguards off`` turns this off."""


@dataclass(frozen=True, slots=True)
class JobView:
    """What the dispatcher needs of one job (a row of the store)."""

    id: str
    created_at: int
    start_by: int
    """End of the submitter's start window (cloud ms); after it the job expires."""
    state: JobState
    sha256: str
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
class PrinterView:
    """The cloud's latest knowledge of one printer."""

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


@dataclass(frozen=True, slots=True)
class LinkEvidence:
    """The newest end-to-end probe round trip through the broker (S8)."""

    verified_at: int | None
    probe_interval_ms: int

    def verified(self, now: int) -> bool:
        """Whether the path to the printers was proven within the last probe interval."""
        return self.verified_at is not None and now - self.verified_at <= self.probe_interval_ms


# ---------------------------------------------------------------------------------------------
# Decisions.


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
    """Forget a stalled staging on one printer so another may take the job."""

    job_id: str


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


Decision = Stage | Start | QueryJournal | Expire | Unassign | PlateNeeded | CancelOnPrinter

_ACTIVE = frozenset({JobState.DISPATCHED, JobState.PRINTING, JobState.PAUSED})


def _settle_due(
    job: JobView, now: int, printers: Mapping[str, PrinterView], policy: DispatchPolicy
) -> bool:
    """Whether to ask the printer's journal about ``job`` now.

    A dispatched job is settled once its start's deadline has passed unanswered. A printing
    job is reconciled when its printer, in a fresh report, says it is doing something else:
    the end report was lost, and only the journal knows how the print ended.
    """
    if job.last_query_at is not None and now - job.last_query_at < policy.query_interval_ms:
        return False
    if job.state is JobState.DISPATCHED and job.not_after is not None:
        return now >= job.not_after + policy.settle_margin_ms
    if job.state in {JobState.PRINTING, JobState.PAUSED} and job.assigned_printer is not None:
        printer = printers.get(job.assigned_printer)
        return (
            printer is not None and _report_fresh(printer, now, policy) and printer.job_id != job.id
        )
    return False


def _report_fresh(printer: PrinterView, now: int, policy: DispatchPolicy) -> bool:
    return printer.online and now - printer.reported_at <= policy.report_max_age_ms


def _ready_to_start(printer: PrinterView, now: int, policy: DispatchPolicy) -> bool:
    """S4/S5/S6/S8 as the cloud can see them; the printer's gate checks them again."""
    if not policy.safeguards:
        return printer.online
    return (
        _report_fresh(printer, now, policy)
        and printer.status is PrinterStatus.IDLE
        and printer.job_id is None
        and printer.fault is None
        and printer.clock_synced
        and printer.cloud_enabled
        and printer.plate in {PlateStatus.CLEAR, PlateStatus.UNCHECKED}
    )


def _can_stage_on(printer: PrinterView, now: int, policy: DispatchPolicy) -> bool:
    # A stage is judged fresh like any command, so an unsynced printer would only refuse it.
    return (
        _report_fresh(printer, now, policy)
        and printer.cloud_enabled
        and printer.fault is None
        and printer.clock_synced
    )


def _candidates(job: JobView, printers: Mapping[str, PrinterView]) -> Iterable[PrinterView]:
    if job.printer_id is not None:
        printer = printers.get(job.printer_id)
        return () if printer is None else (printer,)
    return sorted(
        (p for p in printers.values() if p.model == job.model), key=lambda p: p.printer_id
    )


def plan(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[Decision]:
    """What to do now. Expiry needs no link; everything sent to a printer does (S8, S9)."""
    every_job = list(jobs)
    linked = link.verified(now) or not policy.safeguards
    decisions: list[Decision] = _plan_cancels(every_job, now, printers, policy) if linked else []
    open_jobs = sorted(
        (j for j in every_job if not j.state.terminal), key=lambda j: (j.created_at, j.id)
    )
    # A printer with a job dispatched, printing or paused takes no other start.
    taken = {j.assigned_printer for j in open_jobs if j.state in _ACTIVE}
    staging = {j.assigned_printer for j in open_jobs if j.state is JobState.QUEUED}

    for job in open_jobs:
        if job.state in {JobState.QUEUED, JobState.STAGED} and now >= job.start_by:
            decisions.append(Expire(job.id))
            continue
        if not linked:
            continue
        if _settle_due(job, now, printers, policy):
            assert job.assigned_printer is not None  # noqa: S101 - dispatched implies assigned
            decisions.append(QueryJournal(job.id, job.assigned_printer))
            continue
        if job.state is JobState.QUEUED:
            decisions.extend(_plan_staging(job, now, printers, taken | staging, policy))
            if job.assigned_printer is None:
                staging |= {d.printer_id for d in decisions if isinstance(d, Stage)}
        elif job.state is JobState.STAGED:
            start = _plan_start(job, now, printers, taken, policy)
            if isinstance(start, Start):
                taken.add(start.printer_id)
            if start is not None:
                decisions.append(start)
    return decisions


def _plan_cancels(
    jobs: list[JobView], now: int, printers: Mapping[str, PrinterView], policy: DispatchPolicy
) -> list[Decision]:
    """A cancel can cross a start in flight; if the printer runs a cancelled job, cancel again."""
    decisions: list[Decision] = []
    for job in jobs:
        if job.state is not JobState.CANCELLED or job.assigned_printer is None:
            continue
        printer = printers.get(job.assigned_printer)
        if printer is None or printer.job_id != job.id or not _report_fresh(printer, now, policy):
            continue
        if job.cancel_sent_at is None or now - job.cancel_sent_at >= policy.query_interval_ms:
            decisions.append(CancelOnPrinter(job.id, job.assigned_printer))
    return decisions


def _plan_staging(
    job: JobView,
    now: int,
    printers: Mapping[str, PrinterView],
    busy: set[str | None],
    policy: DispatchPolicy,
) -> list[Decision]:
    if job.assigned_printer is not None:
        printer = printers.get(job.assigned_printer)
        if printer is not None and job.id in printer.staged:
            # The staged event was lost, but the printer's state report says the file is there.
            return []
        stalled = job.stage_sent_at is None or now - job.stage_sent_at >= policy.stage_retry_ms
        if not stalled:
            return []
        if job.printer_id is None:
            return [Unassign(job.id)]
        if printer is not None and _can_stage_on(printer, now, policy):
            return [Stage(job.id, printer.printer_id)]
        return []
    for printer in _candidates(job, printers):
        if job.printer_id is None and printer.printer_id in busy:
            continue
        if _can_stage_on(printer, now, policy):
            return [Stage(job.id, printer.printer_id)]
    return []


def _plan_start(
    job: JobView,
    now: int,
    printers: Mapping[str, PrinterView],
    taken: set[str | None],
    policy: DispatchPolicy,
) -> Decision | None:
    if job.assigned_printer is None or job.assigned_printer in taken:
        return None
    printer = printers.get(job.assigned_printer)
    if printer is None:
        return None
    if not _ready_to_start(printer, now, policy):
        if (
            _report_fresh(printer, now, policy)
            and printer.status is PrinterStatus.IDLE
            and printer.plate is PlateStatus.NEEDS_CONFIRMATION
        ):
            return PlateNeeded(job.id, printer.printer_id)
        return None
    not_after = min(now + policy.dispatch_window_ms, job.start_by)
    if not_after - now < policy.min_start_lead_ms:
        return None
    return Start(job.id, printer.printer_id, not_after)


# ---------------------------------------------------------------------------------------------
# Printer events -> job changes.


@dataclass(frozen=True, slots=True)
class JobChange:
    """A job's new view, the lifecycle event that moved it, and whether to tell its submitter."""

    job: JobView
    event: JobEvent | None
    notify: bool


def _move(job: JobView, event: JobEvent, **fields: object) -> JobChange:
    moved = replace(job, state=transition(job.state, event), **fields)  # type: ignore[arg-type]
    return JobChange(moved, event, notify=moved.state.terminal)


def _requeue_or_expire(job: JobView, now: int, reason: str, policy: DispatchPolicy) -> JobChange:
    cleared: dict[str, object] = {
        "command_id": None,
        "not_after": None,
        "last_query_at": None,
        "query_id": None,
    }
    if job.printer_id is None:
        cleared |= {"assigned_printer": None, "stage_sent_at": None, "stage_command_id": None}
    if now + policy.min_start_lead_ms < job.start_by:
        return _move(job, JobEvent.REQUEUED, reason=reason, **cleared)
    return _move(job, JobEvent.EXPIRED, reason=reason or "start window closed", **cleared)


def apply_event(job: JobView, event: Event, now: int, policy: DispatchPolicy) -> JobChange | None:
    """How a printer event moves ``job``; None if it does not concern the job's current step.

    Only the printer the job is assigned to speaks for it, and only about this job: state
    reports and journal reports are read for what they say of it.
    """
    if job.state.terminal or event.printer_id != job.assigned_printer:
        return None
    if not isinstance(event, PrinterStateEvent | JournalReportEvent) and event.job_id != job.id:
        return None
    if isinstance(event, RejectedEvent) and event.body.reason is Reason.DUPLICATE:
        # A second copy of a command was refused; the answer to the first copy is the one
        # that counts (or, if it was lost, the journal settles it).
        return None
    match event:
        case StagedEvent() if job.state is JobState.QUEUED:
            return _move(job, JobEvent.STAGED)
        case AckEvent(body=body) if body.command_type == "start":
            if job.state is JobState.DISPATCHED and body.command_id == job.command_id:
                return _move(job, JobEvent.STARTED)
        case JobStartedEvent() if job.state is JobState.DISPATCHED:
            return _move(job, JobEvent.STARTED)
        case RejectedEvent(body=body) if body.command_type == "stage":
            if body.command_id != job.stage_command_id:
                return None  # a refusal of an older copy says nothing about the latest stage
            return _stage_refused(job, body.reason, body.detail)
        case RejectedEvent(body=body) if body.command_type == "start":
            if job.state is not JobState.DISPATCHED or body.command_id != job.command_id:
                return None
            if body.reason is Reason.ALREADY_STARTED:
                # The printer says this job already started there: settle from its journal.
                settle_now = replace(job, not_after=now - policy.settle_margin_ms)
                return JobChange(settle_now, None, notify=False)
            if is_transient(body.reason):
                return _requeue_or_expire(job, now, f"{body.reason.value}: {body.detail}", policy)
            return _move(job, JobEvent.REJECTED, reason=f"{body.reason.value}: {body.detail}")
        case JobEndedEvent(body=body) if job.state in _ACTIVE:
            outcome = {
                JobOutcome.COMPLETED: JobEvent.COMPLETED,
                JobOutcome.FAILED: JobEvent.FAILED,
                JobOutcome.CANCELLED: JobEvent.CANCELLED,
            }[body.outcome]
            return _move(job, outcome, reason=body.detail)
        case AckEvent(body=body) if body.command_type in {"pause", "resume"}:
            event_name = JobEvent.PAUSED if body.command_type == "pause" else JobEvent.RESUMED
            if can(job.state, event_name):
                return _move(job, event_name)
        case PrinterStateEvent(body=body) if job.state is JobState.DISPATCHED:
            # The ack was lost, but the printer says it is printing this very job.
            if body.job_id == job.id:
                return _move(job, JobEvent.STARTED)
        case PrinterStateEvent(body=body) if job.state is JobState.QUEUED:
            # The staged event was lost, but the printer lists the file as ready.
            if job.id in body.staged:
                return _move(job, JobEvent.STAGED)
        case JournalReportEvent(body=body) if body.query_id == job.query_id:
            # Only the answer to the query this job is waiting on counts: a late answer to an
            # earlier query may describe an earlier dispatch.
            return _settle_from_report(job, body.jobs.get(job.id), now, policy)
    return None


def _stage_refused(job: JobView, reason: Reason, detail: str) -> JobChange | None:
    if job.state not in {JobState.QUEUED, JobState.STAGED}:
        return None
    if not is_transient(reason):
        return _move(job, JobEvent.REJECTED, reason=f"{reason.value}: {detail}")
    if job.printer_id is not None:
        return None  # the same printer is asked again after stage_retry_ms
    # Any printer of the model will do: let another one take it.
    unassigned = replace(job, assigned_printer=None, stage_sent_at=None, stage_command_id=None)
    if job.state is JobState.STAGED:
        return _move(unassigned, JobEvent.REQUEUED, reason=f"{reason.value}: {detail}")
    return JobChange(unassigned, None, notify=False)


def _settle_from_report(
    job: JobView, status: JournalStatus | None, now: int, policy: DispatchPolicy
) -> JobChange | None:
    if status is None:
        return None
    if job.state is JobState.DISPATCHED:
        if job.not_after is None or now < job.not_after:
            return None
        return settle(job, status, now, policy)
    ended = {JournalStatus.COMPLETED, JournalStatus.FAILED, JournalStatus.CANCELLED}
    if job.state in {JobState.PRINTING, JobState.PAUSED} and status in ended:
        return settle(job, status, now, policy)
    return None


def settle(job: JobView, status: JournalStatus, now: int, policy: DispatchPolicy) -> JobChange:
    """Resolve a dispatched job whose start deadline passed, from the printer's journal.

    A start past its deadline can never be accepted any more (the printer judges the deadline
    against the upper bound of cloud time), so "never started" is final.
    """
    match status:
        case JournalStatus.STARTED:
            return _move(job, JobEvent.STARTED)
        case JournalStatus.COMPLETED:
            return _move(job, JobEvent.COMPLETED)
        case JournalStatus.FAILED:
            return _move(job, JobEvent.FAILED, reason="failed (settled from the journal)")
        case JournalStatus.CANCELLED:
            return _move(job, JobEvent.CANCELLED, reason="cancelled at the printer")
        case _:
            return _requeue_or_expire(job, now, "start not delivered in time", policy)


def expire(job: JobView) -> JobChange:
    """The window closed before the job could start (an :class:`Expire` decision)."""
    return _move(job, JobEvent.EXPIRED, reason=job.reason or "start window closed")


def staged_on(job: JobView, printer_id: str, command_id: str, now: int) -> JobView:
    """Record a :class:`Stage` decision, before its command is published.

    Recorded first because a printer may answer (staged, or refused) before the publish
    returns, and only an answer from the assigned printer to this command moves the job. A
    stage has no physical effect: one that could not be sent is undone and planned again.
    """
    return replace(job, assigned_printer=printer_id, stage_sent_at=now, stage_command_id=command_id)


def dispatched(job: JobView, command_id: str, not_after: int) -> JobView:
    """Record a :class:`Start` decision, *before* the start command is published.

    If the publish fails or the ack is lost, the outcome is settled from the printer's
    journal once ``not_after`` has passed; the start is never simply sent again.
    """
    return replace(
        job,
        state=transition(job.state, JobEvent.DISPATCHED),
        command_id=command_id,
        not_after=not_after,
        last_query_at=None,
        query_id=None,
    )


def queried(job: JobView, query_id: str, now: int) -> JobView:
    """Record a :class:`QueryJournal` decision and the id of the query sent."""
    return replace(job, last_query_at=now, query_id=query_id)


def cancel_sent(job: JobView, now: int) -> JobView:
    """Record a :class:`CancelOnPrinter` decision."""
    return replace(job, cancel_sent_at=now)


def unassigned(job: JobView) -> JobView:
    """Record an :class:`Unassign` decision."""
    return replace(job, assigned_printer=None, stage_sent_at=None, stage_command_id=None)


def cancel(job: JobView) -> JobChange:
    """A user cancels the job; the shell also sends a cancel to its printer if assigned."""
    if not can(job.state, JobEvent.CANCELLED):
        return JobChange(job, None, notify=False)
    return _move(job, JobEvent.CANCELLED, reason="cancelled by user")
