"""The cloud's dispatch decisions, sans-IO: which job to stage, start, settle or expire, and when.

The cloud's store holds the jobs; its dispatcher loop loads them, asks :func:`plan` what to do,
records each decision *before* acting on it, and feeds printer events back through
:func:`apply_event`. Nothing here keeps a queue: a plan is computed afresh from the store, so
there is nothing that could pile up and be dumped onto printers later.

What planning reads (:mod:`~printfleet.protocol.dispatch_views`) and what it decides
(:mod:`~printfleet.protocol.dispatch_decisions`) are data and live apart. What remains here is one
concept, dispatch planning: the plan and the job changes printer events cause share the same
rules (which states are active, when a start is settled from the printer's journal), so a reader
follows one job's decision top to bottom in one file.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from printfleet.protocol.lifecycle import JobEvent, JobState, can, transition
from printfleet.protocol.messages import (
    AckEvent,
    CommandType,
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

# What planning reads and what it decides have modules of their own; callers across printfleet
# import them from here, with the planning that uses them.
__all__ = [
    "ApplySettings",
    "CancelOnPrinter",
    "Decision",
    "DispatchPolicy",
    "Expire",
    "JobChange",
    "JobDecision",
    "JobView",
    "LinkEvidence",
    "Planner",
    "PlateNeeded",
    "PrinterView",
    "QueryJournal",
    "Requirements",
    "SafetySettings",
    "Stage",
    "Start",
    "Unassign",
    "WaitCode",
    "Waiting",
    "Withdraw",
    "apply_event",
    "cancel",
    "cancel_sent",
    "dispatched",
    "expire",
    "may_run_on",
    "plan",
    "plan_settings",
    "queried",
    "settings_agree",
    "settle",
    "staged_on",
    "start_blocker",
    "unassigned",
    "waiting",
    "withdraw",
]
from printfleet.protocol.dispatch_decisions import (
    ApplySettings,
    CancelOnPrinter,
    Decision,
    Expire,
    JobDecision,
    PlateNeeded,
    QueryJournal,
    Stage,
    Start,
    Unassign,
    Waiting,
    Withdraw,
)
from printfleet.protocol.dispatch_views import (
    DispatchPolicy,
    JobView,
    LinkEvidence,
    PrinterView,
    Requirements,
    SafetySettings,
    WaitCode,
)

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


def may_run_on(job: JobView, printer: PrinterView) -> bool:
    """S1: whether the job's submitter may operate ``printer`` now (owner or operator share)."""
    return job.submitter in printer.operators


def settings_agree(printer: PrinterView) -> bool:
    """S5: the printer reported exactly the safety settings the cloud desires."""
    return printer.reported is not None and printer.reported == printer.desired


def start_blocker(printer: PrinterView, now: int, policy: DispatchPolicy) -> str | None:
    """Why no start may go to ``printer`` now (S4/S5/S6/S8 as the cloud sees them), or None.

    The printer's gate checks all of this again; this is the cloud's half, and the reason it
    gives is what a waiting job shows.
    """
    name = printer.printer_id
    if not _report_fresh(printer, now, policy):
        return f"no fresh report from {name}" if printer.online else f"{name} is offline"
    if not printer.cloud_enabled:
        return f"{name} takes no jobs from the cloud (LAN only)"
    if printer.fault is not None:
        return f"{name} has a thermal fault: {printer.fault}"
    if printer.status is not PrinterStatus.IDLE or printer.job_id is not None:
        return f"{name} is busy ({printer.status.value})"
    if not printer.clock_synced:
        return f"{name} has not synchronised its clock with the cloud"
    if printer.reported is None:
        return f"waiting for {name} to report its safety settings"
    if printer.reported != printer.desired:
        word = "on" if printer.desired.plate_check else "off"
        return f"waiting for {name} to apply its plate check setting ({word})"
    if printer.desired.plate_check and printer.plate is not PlateStatus.CLEAR:
        return _PLATE_WAITS[printer.plate].format(name=name)
    return None


_PLATE_WAITS = {
    PlateStatus.OCCUPIED: "the plate sensor of {name} sees something on the plate",
    PlateStatus.NEEDS_CONFIRMATION: "the plate of {name} needs a person to confirm it is clear",
    PlateStatus.UNCHECKED: "{name} has not checked its plate",
}
"""A plate the cloud does not positively know to be clear is never ready (S5)."""


def _can_stage_on(job: JobView, printer: PrinterView, now: int, policy: DispatchPolicy) -> bool:
    # A stage is judged fresh like any command, so an unsynced printer would only refuse it. A
    # stage hands the printer a link to the submitter's file: only where the submitter may print.
    return may_run_on(job, printer) and (
        _report_fresh(printer, now, policy)
        and printer.cloud_enabled
        and printer.fault is None
        and printer.clock_synced
    )


def _candidates(job: JobView, printers: Mapping[str, PrinterView]) -> Iterable[PrinterView]:
    """The printers a job may go to: its own, or every printer of its model the submitter may
    operate (a model-wide job is "any printer of that model that I may operate")."""
    if job.printer_id is not None:
        printer = printers.get(job.printer_id)
        return () if printer is None else (printer,)
    return sorted(
        (p for p in printers.values() if p.model == job.model and may_run_on(job, p)),
        key=lambda p: p.printer_id,
    )


def plan_settings(
    now: int, printers: Mapping[str, PrinterView], link: LinkEvidence, policy: DispatchPolicy
) -> list[ApplySettings]:
    """Re-send desired safety settings to every reachable printer that reports others (S5).

    A printer that was away when its owner changed a setting learns it as soon as it reports
    again: on reconnect and re-announce it sends its state, and this sends the settings back
    until the two agree. A setting is idempotent, so re-sending it is harmless.
    """
    if not link.verified(now):
        return []
    return [
        ApplySettings(printer.printer_id, printer.desired)
        for printer in sorted(printers.values(), key=lambda p: p.printer_id)
        if not settings_agree(printer)
        and _report_fresh(printer, now, policy)
        and printer.cloud_enabled
        # An unsynced printer refuses every command as of unknown age: wait for its sync.
        and printer.clock_synced
        and (
            printer.settings_sent_at is None
            or now - printer.settings_sent_at >= policy.settings_retry_ms
        )
    ]


def plan(
    now: int,
    jobs: Iterable[JobView],
    printers: Mapping[str, PrinterView],
    link: LinkEvidence,
    policy: DispatchPolicy,
) -> list[Decision]:
    """What to do now. Expiry needs no link; everything sent to a printer does (S8, S9)."""
    every_job = list(jobs)
    linked = link.verified(now)
    decisions: list[Decision] = []
    if linked:
        decisions.extend(plan_settings(now, printers, link, policy))
        decisions.extend(_plan_cancels(every_job, now, printers, policy))
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
        withdraw = _withdrawal(job, printers)
        if withdraw is not None:
            # Needs no link: nothing is sent, and a job must not wait on a printer its
            # submitter lost, whatever the broker does.
            decisions.append(withdraw)
            continue
        if not linked:
            continue
        if _settle_due(job, now, printers, policy):
            assert job.assigned_printer is not None  # noqa: S101 - dispatched implies assigned
            decisions.append(QueryJournal(job.id, job.assigned_printer))
            continue
        if job.state is JobState.QUEUED:
            staged = _plan_staging(job, now, printers, taken | staging, policy)
            decisions.extend(staged)
            if job.assigned_printer is None:
                staging |= {d.printer_id for d in staged if isinstance(d, Stage)}
        elif job.state is JobState.STAGED:
            started = _plan_start(job, now, printers, taken, policy)
            taken |= {d.printer_id for d in started if isinstance(d, Start)}
            decisions.extend(started)
    return decisions


Planner = Callable[
    [int, Iterable[JobView], Mapping[str, PrinterView], LinkEvidence, DispatchPolicy],
    list[Decision],
]
"""The shape of :func:`plan`: what a dispatcher asks for its decisions. The dispatcher takes
:func:`plan` unless handed another, as tests and the chaos harness do to show what their
checkers catch when the planning goes wrong."""


def _withdrawal(job: JobView, printers: Mapping[str, PrinterView]) -> Withdraw | None:
    """S1: a waiting job whose submitter may no longer operate its printer leaves that printer.

    Checked at every planning round, so a share revoked while the job waits takes effect
    before anything more is sent. A job already dispatched is past the point of choosing.
    """
    if job.state not in {JobState.QUEUED, JobState.STAGED}:
        return None
    printer_id = job.assigned_printer or job.printer_id
    if printer_id is None:
        return None
    printer = printers.get(printer_id)
    if printer is None or may_run_on(job, printer):
        # A printer the cloud has no view of gets nothing: staging and starting check again.
        return None
    return Withdraw(job.id, printer_id, f"the submitter may no longer operate {printer_id}")


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
) -> list[JobDecision]:
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
        if printer is not None and _can_stage_on(job, printer, now, policy):
            return [Stage(job.id, printer.printer_id)]
        return []
    for printer in _candidates(job, printers):
        if job.printer_id is None and printer.printer_id in busy:
            continue
        if _can_stage_on(job, printer, now, policy):
            return [Stage(job.id, printer.printer_id)]
    if job.printer_id is not None:
        printer = printers.get(job.printer_id)
        reason = (
            f"{job.printer_id} has never reported"
            if printer is None
            else start_blocker(printer, now, policy) or f"{job.printer_id} cannot take files now"
        )
    else:
        reason = f"no printer of model {job.model} that the submitter may operate can take it now"
    return _waiting(job, reason)


def _waiting(job: JobView, reason: str) -> list[JobDecision]:
    # Recorded only when it changes: a reason is for people, not a write per planning round.
    return [] if reason == job.reason else [Waiting(job.id, reason)]


def _plan_start(
    job: JobView,
    now: int,
    printers: Mapping[str, PrinterView],
    taken: set[str | None],
    policy: DispatchPolicy,
) -> list[JobDecision]:
    if job.assigned_printer is None:
        return []
    if job.assigned_printer in taken:
        return _waiting(job, f"{job.assigned_printer} is running another job")
    printer = printers.get(job.assigned_printer)
    if printer is None:
        return _waiting(job, f"{job.assigned_printer} has never reported")
    blocker = start_blocker(printer, now, policy)
    if blocker is not None:
        waits = _waiting(job, blocker)
        if (
            _report_fresh(printer, now, policy)
            and printer.status is PrinterStatus.IDLE
            and printer.plate is PlateStatus.NEEDS_CONFIRMATION
            and printer.desired.plate_check
        ):
            return [PlateNeeded(job.id, printer.printer_id), *waits]
        return waits
    not_after = min(now + policy.dispatch_window_ms, job.start_by)
    if not_after - now < policy.min_start_lead_ms:
        return []
    return [Start(job.id, printer.printer_id, not_after, printer.desired.plate_check)]


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
        case AckEvent(body=body) if body.command_type == CommandType.START:
            if job.state is JobState.DISPATCHED and body.command_id == job.command_id:
                return _move(job, JobEvent.STARTED)
        case JobStartedEvent() if job.state is JobState.DISPATCHED:
            return _move(job, JobEvent.STARTED)
        case RejectedEvent(body=body) if body.command_type == CommandType.STAGE:
            if body.command_id != job.stage_command_id:
                return None  # a refusal of an older copy says nothing about the latest stage
            return _stage_refused(job, body.reason, body.detail)
        case RejectedEvent(body=body) if body.command_type == CommandType.START:
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
        case AckEvent(body=body) if body.command_type in {CommandType.PAUSE, CommandType.RESUME}:
            event_name = (
                JobEvent.PAUSED if body.command_type == CommandType.PAUSE else JobEvent.RESUMED
            )
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
    return replace(
        job,
        assigned_printer=printer_id,
        stage_sent_at=now,
        stage_command_id=command_id,
        reason="",
    )


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
        reason="",
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


def withdraw(job: JobView, reason: str) -> JobChange:
    """Carry out a :class:`Withdraw` decision.

    A job for any printer of a model forgets the printer and waits for another it may use; a
    job for that one printer can never start and is rejected, so its submitter hears of it.
    """
    loose = replace(unassigned(job), reason=reason)
    if job.printer_id is not None:
        # Unassigned too: the cloud ended it, not a printer's refusal.
        return _move(loose, JobEvent.REJECTED, reason=reason)
    if job.state is JobState.STAGED:
        return _move(loose, JobEvent.REQUEUED, reason=reason)
    return JobChange(loose, None, notify=False)


def waiting(job: JobView, reason: str) -> JobView:
    """Record a :class:`Waiting` decision: why the job has not started yet."""
    return replace(job, reason=reason)


def cancel(job: JobView) -> JobChange:
    """A user cancels the job; the shell also sends a cancel to its printer if assigned."""
    if not can(job.state, JobEvent.CANCELLED):
        return JobChange(job, None, notify=False)
    return _move(job, JobEvent.CANCELLED, reason="cancelled by user")
