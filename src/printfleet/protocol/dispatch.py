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
from dataclasses import dataclass, field, replace

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
    "Blocker",
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
    "in_target",
    "matches_requirements",
    "may_run_on",
    "plan",
    "plan_settings",
    "planning_order",
    "queried",
    "settings_agree",
    "settle",
    "staged_on",
    "start_blocker",
    "unassign",
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
_WAITING = frozenset({JobState.QUEUED, JobState.STAGED})
"""A job in these states waits for a start, and says why (``wait`` and ``reason``)."""


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


Blocker = tuple[WaitCode, str]
"""Why something cannot happen now: the code for machines, the sentence for people."""


def start_blocker(printer: PrinterView, now: int, policy: DispatchPolicy) -> Blocker | None:
    """Why no start may go to ``printer`` now (S4/S5/S6/S8 as the cloud sees them), or None.

    The printer's gate checks all of this again; this is the cloud's half, and the sentence it
    gives, which says what releases the printer, is what a waiting job shows.
    """
    name = printer.printer_id
    blocker = _stage_blocker(printer, now, policy)
    if blocker is not None:
        return blocker
    if printer.status is not PrinterStatus.IDLE or printer.job_id is not None:
        return WaitCode.BUSY, f"{name} is busy ({printer.status.value}): waiting for it to finish"
    if printer.reported is None:
        return WaitCode.SETTINGS_PENDING, f"waiting for {name} to report its safety settings"
    if printer.reported != printer.desired:
        word = "on" if printer.desired.plate_check else "off"
        return (
            WaitCode.SETTINGS_PENDING,
            f"waiting for {name} to apply its plate check setting ({word})",
        )
    if printer.desired.plate_check and printer.plate is not PlateStatus.CLEAR:
        code, sentence = _PLATE_WAITS[printer.plate]
        return code, sentence.format(name=name)
    return None


_PLATE_WAITS = {
    PlateStatus.OCCUPIED: (
        WaitCode.PLATE_OCCUPIED,
        "the plate sensor of {name} sees something on the plate: remove the print",
    ),
    PlateStatus.NEEDS_CONFIRMATION: (
        WaitCode.PLATE_UNCONFIRMED,
        (
            "the plate of {name} needs a person to confirm it is clear: "
            "`printfleet confirm-plate {name}`"
        ),
    ),
    PlateStatus.UNCHECKED: (
        WaitCode.PLATE_UNCHECKED,
        "{name} has not checked its plate: waiting for it to apply its plate check",
    ),
}
"""A plate the cloud does not positively know to be clear is never ready (S5)."""


def _stage_blocker(printer: PrinterView, now: int, policy: DispatchPolicy) -> Blocker | None:
    """Why ``printer`` cannot be handed a file now: a stage is judged fresh like any command,
    so an unsynced or silent printer would only refuse it."""
    name = printer.printer_id
    if not _report_fresh(printer, now, policy):
        if printer.online:
            return WaitCode.REPORT_STALE, f"no fresh report from {name}: waiting for it to report"
        return WaitCode.OFFLINE, f"{name} is offline: waiting for it to come back"
    if not printer.cloud_enabled:
        return (
            WaitCode.LAN_ONLY,
            f"{name} takes no jobs from the cloud (LAN only): switch cloud jobs on at it",
        )
    if printer.fault is not None:
        return (
            WaitCode.THERMAL_FAULT,
            f"{name} has a thermal fault: {printer.fault}: fix it and clear the fault there",
        )
    if not printer.clock_synced:
        return (
            WaitCode.CLOCK_UNSYNCED,
            f"{name} has not synchronised its clock with the cloud: waiting for it to",
        )
    return None


# -- what a job needs, and where it may go ------------------------------------------------------


def matches_requirements(requirements: Requirements, printer: PrinterView) -> bool:
    """Whether ``printer`` has the job's material loaded and its nozzle fitted.

    A printer that reports no materials at all (older agents, bridges) matches no job that
    needs one; a requirement of None matches anything.
    """
    return (requirements.material is None or requirements.material in printer.materials) and (
        requirements.nozzle_um is None or requirements.nozzle_um == printer.nozzle_um
    )


def in_target(job: JobView, printer: PrinterView) -> bool:
    """Whether ``printer`` is what the job asked for: its printer, one of its model, or one of
    its pool (S1 aside: :func:`may_run_on` says whether the submitter may use it)."""
    if job.printer_id is not None:
        return printer.printer_id == job.printer_id
    if job.pool_id is not None:
        return job.pool_id in printer.pools
    return printer.model == job.model


def planning_order(job: JobView) -> tuple[int, int, str]:
    """Jobs are planned by priority (highest first), then oldest first, then by id."""
    return -job.priority, job.created_at, job.id


def _by_wear(printer: PrinterView) -> tuple[float, str]:
    # Among equals the least worn printer goes first, so a farm wears evenly.
    return printer.print_hours, printer.printer_id


def _mm(nozzle_um: int) -> str:
    return f"{nozzle_um / 1000:g} mm"


def _needs(requirements: Requirements) -> str:
    """``PETG and a 0.4 mm nozzle``: what a job needs, for a sentence."""
    parts = [
        *([requirements.material] if requirements.material is not None else []),
        *([f"a {_mm(requirements.nozzle_um)} nozzle"] if requirements.nozzle_um else []),
    ]
    return " and ".join(parts)


def _mismatch(job: JobView, printer: PrinterView) -> Blocker:
    """Why a job's own printer does not fit it, and what would make it fit."""
    name, needs = printer.printer_id, job.requirements
    if needs.material is not None and needs.material not in printer.materials:
        loaded = " and ".join(sorted(printer.materials))
        has = f"{name} has {loaded} loaded" if loaded else f"{name} reports no loaded material"
        sentence = (
            f"{has}, this job needs {needs.material}; load {needs.material} or submit elsewhere"
        )
        return WaitCode.MATERIAL_MISMATCH, sentence
    nozzle = needs.nozzle_um or 0
    has = (
        f"{name} has a {_mm(printer.nozzle_um)} nozzle"
        if printer.nozzle_um is not None
        else f"{name} has not reported its nozzle"
    )
    sentence = f"{has}, this job needs a {_mm(nozzle)} nozzle; fit one or submit elsewhere"
    return WaitCode.MATERIAL_MISMATCH, sentence


def _target_words(job: JobView) -> str:
    """``p1`` or ``printer in pool farm-a``: what a model or pool job may go to."""
    return f"printer in pool {job.pool_id}" if job.pool_id is not None else f"{job.model}"


# -- one planning round ------------------------------------------------------------------------


@dataclass(slots=True)
class _Round:
    """What one planning round has given away so far, in planning order."""

    now: int
    printers: Mapping[str, PrinterView]
    policy: DispatchPolicy
    taken: set[str]
    """Printers with a job dispatched, printing or paused, or given a start this round."""
    heating: set[str]
    """Printers heating up, or about to (a start in flight), for the heat-up cap."""
    claimed: set[str] = field(default_factory=set)
    """Printers a job ahead in planning order waits on or was just staged on: a job further
    back does not start there this round."""
    staging: set[str] = field(default_factory=set)
    """Printers a job ahead is being staged on: a model or pool job further back looks for
    another (it may still join a job ahead that is staged already, and wait behind it)."""

    def claim(self, printer_id: str, *, staging: bool) -> None:
        """A job ahead of the rest waits on ``printer_id`` (its file on the way if ``staging``)."""
        self.claimed.add(printer_id)
        if staging:
            self.staging.add(printer_id)

    def heat_up_full(self) -> Blocker | None:
        """The heat-up cap is reached: no more starts this round."""
        cap = self.policy.max_heating
        if not cap or len(self.heating) < cap:
            return None
        return (
            WaitCode.HEAT_UP_SLOT,
            f"waiting for a heat-up slot ({len(self.heating)} of {cap} printers heating)",
        )


def _heating(jobs: list[JobView], printers: Mapping[str, PrinterView]) -> set[str]:
    """Printers that count against the heat-up cap: heating as their telemetry says, with a
    start in flight, or printing a job their reports do not show yet (so not shown heated)."""
    heating = {p.printer_id for p in printers.values() if p.heating}
    for job in jobs:
        printer_id = job.assigned_printer
        if printer_id is None:
            continue
        if job.state is JobState.DISPATCHED:
            heating.add(printer_id)
        elif job.state is JobState.PRINTING:
            view = printers.get(printer_id)
            if view is None or view.job_id != job.id or view.status is not PrinterStatus.PRINTING:
                heating.add(printer_id)
    return heating


_NO_LINK: Blocker = (
    WaitCode.NO_LINK,
    "the cloud has no proven path to the printers: waiting for the broker link",
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
    """What to do now. Expiry needs no link; everything sent to a printer does (S8, S9).

    Jobs are planned in :func:`planning_order`; each takes the least worn printer that fits
    it, and a job further back never starts on a printer a job ahead of it waits on.
    """
    every_job = list(jobs)
    linked = link.verified(now)
    decisions: list[Decision] = []
    if linked:
        decisions.extend(plan_settings(now, printers, link, policy))
        decisions.extend(_plan_cancels(every_job, now, printers, policy))
    open_jobs = sorted((j for j in every_job if not j.state.terminal), key=planning_order)
    # A printer with a job dispatched, printing or paused takes no other start.
    taken = {j.assigned_printer for j in open_jobs if j.state in _ACTIVE}
    round_ = _Round(
        now, printers, policy, {p for p in taken if p is not None}, _heating(open_jobs, printers)
    )
    for job in open_jobs:
        if job.state in _WAITING and now >= job.start_by:
            decisions.append(Expire(job.id))
            continue
        withdraw = _withdrawal(job, printers)
        if withdraw is not None:
            # Needs no link: nothing is sent, and a job must not wait on a printer its
            # submitter lost, whatever the broker does.
            decisions.append(withdraw)
            continue
        if not linked:
            if job.state in _WAITING:
                decisions.extend(_waiting(job, _NO_LINK))
            continue
        if _settle_due(job, now, printers, policy):
            assert job.assigned_printer is not None  # noqa: S101 - dispatched implies assigned
            decisions.append(QueryJournal(job.id, job.assigned_printer))
            continue
        if job.state is JobState.QUEUED:
            decisions.extend(_plan_staging(job, round_))
        elif job.state is JobState.STAGED:
            decisions.extend(_plan_start(job, round_))
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


def _plan_staging(job: JobView, round_: _Round) -> list[JobDecision]:
    now, policy = round_.now, round_.policy
    if job.assigned_printer is not None:
        round_.claim(job.assigned_printer, staging=True)
        printer = round_.printers.get(job.assigned_printer)
        if printer is not None and job.id in printer.staged:
            # The staged event was lost, but the printer's state report says the file is there.
            return []
        stalled = job.stage_sent_at is None or now - job.stage_sent_at >= policy.stage_retry_ms
        if not stalled:
            return []
        if job.printer_id is None:
            return [Unassign(job.id)]
    if job.printer_id is not None:
        return _stage_pinned(job, round_)
    return _stage_anywhere(job, round_)


def _stage_pinned(job: JobView, round_: _Round) -> list[JobDecision]:
    """A job for one printer is staged there once the printer can take it and fits it."""
    assert job.printer_id is not None  # noqa: S101 - the caller's branch
    printer = round_.printers.get(job.printer_id)
    if printer is None:
        return _waiting(job, (WaitCode.NEVER_REPORTED, f"{job.printer_id} has never reported"))
    if not matches_requirements(job.requirements, printer):
        return _waiting(job, _mismatch(job, printer))
    blocker = _stage_blocker(printer, round_.now, round_.policy)
    if blocker is None and may_run_on(job, printer):
        round_.claim(printer.printer_id, staging=True)
        return [Stage(job.id, printer.printer_id)]
    if blocker is None:
        blocker = WaitCode.NOT_PERMITTED, f"the submitter may not operate {printer.printer_id}"
    return _waiting(job, blocker)


def _stage_anywhere(job: JobView, round_: _Round) -> list[JobDecision]:
    """A job for any printer of a model or pool goes to the least worn one it fits that is
    free of jobs ahead of it; else it says what holds it."""
    what = _target_words(job)
    targets = sorted(
        (p for p in round_.printers.values() if in_target(job, p) and may_run_on(job, p)),
        key=_by_wear,
    )
    if not targets:
        kind = what if job.pool_id is not None else f"printer of model {what}"
        sentence = f"no {kind} that you may operate has been heard from"
        return _waiting(job, (WaitCode.NO_PRINTER, sentence))
    fitting = [p for p in targets if matches_requirements(job.requirements, p)]
    if not fitting:
        sentence = f"no {what} with {_needs(job.requirements)} that you may use"
        return _waiting(job, (WaitCode.MATERIAL_MISMATCH, sentence))
    blockers: list[Blocker] = []
    for printer in fitting:
        name = printer.printer_id
        if name in round_.taken:
            blockers.append((WaitCode.BUSY, f"{name} is running another job"))
        elif name in round_.staging:
            blockers.append((WaitCode.BUSY, f"{name} is kept for a job ahead of this one"))
        elif (blocker := _stage_blocker(printer, round_.now, round_.policy)) is not None:
            blockers.append(blocker)
        else:
            round_.claim(name, staging=True)
            return [Stage(job.id, name)]
    _, sentence = min(blockers, key=lambda blocker: _RELEASE_ORDER.index(blocker[0]))
    needs = _needs(job.requirements)
    kind = f"{what} with {needs}" if needs else what
    return _waiting(
        job, (WaitCode.NO_PRINTER_FREE, f"no {kind} that you may operate is free: {sentence}")
    )


_RELEASE_ORDER = (
    WaitCode.PLATE_OCCUPIED,
    WaitCode.PLATE_UNCONFIRMED,
    WaitCode.PLATE_UNCHECKED,
    WaitCode.SETTINGS_PENDING,
    WaitCode.BUSY,
    WaitCode.CLOCK_UNSYNCED,
    WaitCode.REPORT_STALE,
    WaitCode.THERMAL_FAULT,
    WaitCode.LAN_ONLY,
    WaitCode.OFFLINE,
)
"""Which blocker to name when no printer is free: the one a person can release soonest."""


def _waiting(job: JobView, blocker: Blocker) -> list[JobDecision]:
    # Recorded only when it changes: a reason is for people, not a write per planning round.
    code, reason = blocker
    return [] if (code, reason) == (job.wait, job.reason) else [Waiting(job.id, code, reason)]


def _plan_start(job: JobView, round_: _Round) -> list[JobDecision]:
    printer_id = job.assigned_printer
    if printer_id is None:
        return []
    if printer_id in round_.taken:
        return _waiting(job, (WaitCode.BUSY, f"{printer_id} is running another job"))
    printer = round_.printers.get(printer_id)
    if printer is None:
        return _waiting(job, (WaitCode.NEVER_REPORTED, f"{printer_id} has never reported"))
    if not in_target(job, printer):
        # It left the job's pool since the file went there: another one may take the job.
        return [Unassign(job.id)]
    if not matches_requirements(job.requirements, printer):
        # Its loadout changed since the file went there.
        if job.printer_id is None:
            return [Unassign(job.id, *_mismatch(job, printer))]
        return _waiting(job, _mismatch(job, printer))
    ahead = printer_id in round_.claimed
    round_.claim(printer_id, staging=False)
    blocker = start_blocker(printer, round_.now, round_.policy)
    if blocker is not None:
        waits = _waiting(job, blocker)
        if (
            _report_fresh(printer, round_.now, round_.policy)
            and printer.status is PrinterStatus.IDLE
            and printer.plate is PlateStatus.NEEDS_CONFIRMATION
            and printer.desired.plate_check
        ):
            return [PlateNeeded(job.id, printer.printer_id), *waits]
        return waits
    if ahead:
        return _waiting(job, (WaitCode.BUSY, f"{printer_id} is kept for a job ahead of this one"))
    full = round_.heat_up_full()
    if full is not None:
        return _waiting(job, full)
    not_after = min(round_.now + round_.policy.dispatch_window_ms, job.start_by)
    if not_after - round_.now < round_.policy.min_start_lead_ms:
        return []
    round_.taken.add(printer_id)
    round_.heating.add(printer_id)
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
    if moved.state not in _WAITING and moved.state is not JobState.EXPIRED:
        # No longer waiting; an expired job keeps the code that held it last.
        moved = replace(moved, wait=None)
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
    """The window closed before the job could start (an :class:`Expire` decision); it keeps
    the code of its last wait and says what held it."""
    reason = (
        f"start window closed while waiting: {job.reason}" if job.reason else "start window closed"
    )
    return _move(job, JobEvent.EXPIRED, reason=reason)


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
        wait=None,
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
        wait=None,
    )


def queried(job: JobView, query_id: str, now: int) -> JobView:
    """Record a :class:`QueryJournal` decision and the id of the query sent."""
    return replace(job, last_query_at=now, query_id=query_id)


def cancel_sent(job: JobView, now: int) -> JobView:
    """Record a :class:`CancelOnPrinter` decision."""
    return replace(job, cancel_sent_at=now)


def unassigned(job: JobView) -> JobView:
    """Forget the printer a job was assigned to (and the stage sent there)."""
    return replace(job, assigned_printer=None, stage_sent_at=None, stage_command_id=None)


def unassign(job: JobView, decision: Unassign) -> JobChange:
    """Carry out an :class:`Unassign` decision: the job forgets its printer; a staged one goes
    back to the queue, saying why if the decision does."""
    loose = unassigned(job)
    if decision.code is not None:
        loose = replace(loose, wait=decision.code, reason=decision.reason)
    if job.state is JobState.STAGED:
        return _move(loose, JobEvent.REQUEUED)
    return JobChange(loose, None, notify=False)


def withdraw(job: JobView, reason: str) -> JobChange:
    """Carry out a :class:`Withdraw` decision.

    A job for any printer of a model forgets the printer and waits for another it may use; a
    job for that one printer can never start and is rejected, so its submitter hears of it.
    """
    loose = replace(unassigned(job), reason=reason)
    if job.printer_id is not None:
        # Unassigned too: the cloud ended it, not a printer's refusal.
        return _move(loose, JobEvent.REJECTED, reason=reason)
    loose = replace(loose, wait=WaitCode.NOT_PERMITTED)
    if job.state is JobState.STAGED:
        return _move(loose, JobEvent.REQUEUED, reason=reason)
    return JobChange(loose, None, notify=False)


def waiting(job: JobView, decision: Waiting) -> JobView:
    """Record a :class:`Waiting` decision: why the job has not started yet."""
    return replace(job, wait=decision.code, reason=decision.reason)


def cancel(job: JobView) -> JobChange:
    """A user cancels the job; the shell also sends a cancel to its printer if assigned."""
    if not can(job.state, JobEvent.CANCELLED):
        return JobChange(job, None, notify=False)
    return _move(job, JobEvent.CANCELLED, reason="cancelled by user")
