"""Jobs as people handle them: submit (one, or copies), look at, list, reorder, cancel, pause
and resume.

Who may act on a job is decided here and again at dispatch (S1): a job's submitter must still
operate its printer when it starts and when they command it; the printer's owner always may.
A job targets one printer, any printer of a model, or any printer of one of the submitter's
pools; what it needs of a printer (material, nozzle) defaults to what its file's slicer wrote.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from enum import Enum

from printfleet.cloud.dispatch.link import PublishOutcome
from printfleet.cloud.store import (
    Actor,
    AuditNote,
    AuditRecord,
    Conflict,
    FileRecord,
    JobCreated,
    JobRecord,
    NotFound,
    Role,
    StateConflict,
)
from printfleet.cloud.store.jobs import MAX_COPIES
from printfleet.cloud.usecases.live import LiveFleet
from printfleet.cloud.usecases.pools import PoolActions
from printfleet.cloud.usecases.ports import AuditTrail, JobRecords, PrinterRecords, UploadedFiles
from printfleet.cloud.usecases.principal import (
    Forbidden,
    InvalidRequest,
    Principal,
    Scope,
    at_least,
)
from printfleet.cloud.usecases.printers import PrinterActions
from printfleet.protocol import dispatch
from printfleet.protocol.dispatch import Requirements
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobEvent, JobState

JobListener = Callable[[JobRecord, JobEvent | None], Awaitable[None]]
"""Told of each job a person created (event None) or ended (the event), to notify people."""

CANCEL_ATTEMPTS = 5
"""How often a cancel reads the job again after the dispatcher wrote it in between."""


DEFAULT_START_WITHIN_S = 3_600
"""How long a job may wait to start when its submitter does not say."""
MAX_START_WITHIN_S = 7 * 24 * 3_600
"""The longest a job may wait to start."""
PRIORITIES = range(-100, 101)
"""A job's priority: higher starts first; 0 by default."""
NOZZLES_UM = range(100, 2001)
"""The nozzle diameters a job may require, in micrometres (the protocol's ``NozzleUm``)."""
_MATERIAL = re.compile(r"[A-Z0-9][A-Z0-9-]{0,15}")
"""One material name as the protocol spells it (``MaterialName``), and not a mix (``+``)."""
WAITING = frozenset({JobState.QUEUED, JobState.STAGED})
"""The states of a job that has not started: the queue a priority orders."""


class FromFile(Enum):
    """A requirement left out at submission: taken from the file's slicer metadata."""

    FROM_FILE = "from the file"


FROM_FILE = FromFile.FROM_FILE


@dataclass(frozen=True, slots=True)
class JobWindows:
    """How long a job may wait to start: the submitter's choice, within bounds."""

    default_start_within_s: int = DEFAULT_START_WITHIN_S
    max_start_within_s: int = MAX_START_WITHIN_S


class JobActions:
    """What people do with jobs."""

    def __init__(
        self,
        *,
        jobs: JobRecords,
        files: UploadedFiles,
        printers: PrinterRecords,
        audit: AuditTrail,
        printer_actions: PrinterActions,
        pool_actions: PoolActions,
        live: LiveFleet,
        issuer: CommandIssuer,
        windows: JobWindows,
        clock_ms: Callable[[], int],
    ) -> None:
        self.jobs = jobs
        self.files = files
        self.printers = printers
        self.audit = audit
        self.printer_actions = printer_actions
        self.pool_actions = pool_actions
        self.live = live
        self.issuer = issuer
        self.windows = windows
        self._clock_ms = clock_ms
        self.listener: JobListener | None = None
        """The app's notifier hook; the dispatcher tells of the changes it makes itself."""

    async def submit_job(
        self,
        principal: Principal,
        *,
        file_id: str,
        printer_id: str | None = None,
        model: str | None = None,
        pool_id: str | None = None,
        start_within_s: int | None = None,
        idempotency_key: str | None = None,
        notify_completion: bool = False,
        priority: int = 0,
        copies: int = 1,
        material: str | FromFile | None = FROM_FILE,
        nozzle_um: int | FromFile | None = FROM_FILE,
    ) -> JobCreated:
        """Queue a print of an uploaded file on a printer, on any printer of a model, or on any
        printer of one of the caller's pools; ``copies`` of it as one batch (the first copy is
        returned).

        ``material`` and ``nozzle_um`` left out come from the file's slicer metadata; None
        means "any". A file that uses several materials requires none of them by default.
        """
        principal.require(Scope.WRITE)
        if sum(target is not None for target in (printer_id, model, pool_id)) != 1:
            raise InvalidRequest("give exactly one of printer_id, model and pool_id")
        window = start_within_s or self.windows.default_start_within_s
        if not 0 < window <= self.windows.max_start_within_s:
            raise InvalidRequest(
                f"start_within_s must be between 1 and {self.windows.max_start_within_s}"
            )
        _check_priority(priority)
        if not 1 <= copies <= MAX_COPIES:
            raise InvalidRequest(f"copies must be between 1 and {MAX_COPIES}, e.g. 3")
        file = await self.files.get(file_id)
        if file.owner_id != principal.user.id:
            raise NotFound(f"no file {file_id}")
        requirements = _requirements(file, material, nozzle_um)
        if printer_id is not None:
            await self.printer_actions.access(principal, printer_id, Role.OPERATOR)
        elif pool_id is not None:
            await self.pool_actions.usable_pool(principal, pool_id)
        elif not [
            a
            for a in await self.printers.for_user(principal.user.id)
            if a.printer.model == model and at_least(a.role, Role.OPERATOR)
        ]:
            raise InvalidRequest(f"you operate no printer of model {model!r}")
        created = await self.jobs.create(
            principal.user.id,
            sha256=file.sha256,
            start_by=self._clock_ms() + window * 1000,
            printer_id=printer_id,
            model=model,
            pool_id=pool_id,
            requirements=requirements,
            priority=priority,
            copies=copies,
            file_id=file.id,
            name=file.name,
            notify_completion=notify_completion,
            idempotency_key=idempotency_key,
        )
        self.live.wake_dispatcher()
        if created.created and self.listener is not None:
            await self.listener(created.job, None)
        return created

    async def set_priority(self, principal: Principal, job_id: str, priority: int) -> JobRecord:
        """Reorder the queue: a waiting job's new priority (its submitter or its printer's
        owner). A job that has started, or ended, is :class:`StateConflict` (409)."""
        principal.require(Scope.WRITE)
        _check_priority(priority)
        for attempt in range(CANCEL_ATTEMPTS):
            record = await self.job(principal, job_id)
            if record.view.state not in WAITING:
                raise StateConflict(
                    f"job {job_id} is {record.view.state.value}: only a job that has not "
                    "started yet (queued or staged) can be reordered"
                )
            if record.view.priority == priority:
                return record
            note = AuditNote(
                Actor.user(principal.user.id),
                "job.priority",
                detail={"from": record.view.priority, "to": priority},
            )
            try:
                saved = await self.jobs.save(
                    replace(record.view, priority=priority),
                    expected_version=record.version,
                    audit=note,
                )
            except Conflict:
                # The dispatcher wrote the job in between (a wait reason): decide again.
                if attempt == CANCEL_ATTEMPTS - 1:
                    raise
                continue
            break
        self.live.wake_dispatcher()
        return saved

    async def job(self, principal: Principal, job_id: str) -> JobRecord:
        """A job the caller submitted, or one for or on a printer the caller owns.

        A printer's owner answers for everything on it: they see, cancel, pause and resume
        any job there, whoever submitted it. Anyone else's job is NotFound, as a missing one is.
        """
        try:
            record = await self.jobs.load(job_id)
        except NotFound:
            record = None
        if record is None or not (
            record.owner_id == principal.user.id or await self._owns_printer_of(principal, record)
        ):
            raise NotFound(f"no job {job_id}")
        return record

    async def _owns_printer_of(self, principal: Principal, record: JobRecord) -> bool:
        printer_id = record.view.assigned_printer or record.view.printer_id
        if printer_id is None:
            return False
        return await self.printers.role_of(printer_id, principal.user.id) is Role.OWNER

    async def _may_act_on(self, principal: Principal, record: JobRecord, printer_id: str) -> None:
        """S1 for commands to a running job: the submitter must still operate its printer now
        (a share revoked or turned into a viewer's takes the power away at once); the printer's
        owner always may."""
        role = await self.printers.role_of(printer_id, principal.user.id)
        if role is Role.OWNER or (
            record.owner_id == principal.user.id
            and role is not None
            and at_least(role, Role.OPERATOR)
        ):
            return
        raise Forbidden(f"you may no longer operate {printer_id}")

    async def jobs_for(
        self,
        principal: Principal,
        *,
        states: Collection[JobState] | None = None,
        printer_id: str | None = None,
        batch_id: str | None = None,
        older_than: str | None = None,
        limit: int = 50,
    ) -> list[JobRecord]:
        """The caller's jobs, newest first, a page at a time (see ``Jobs.for_owner``)."""
        return await self.jobs.for_owner(
            principal.user.id,
            states=states,
            printer_id=printer_id,
            batch_id=batch_id,
            older_than=older_than,
            limit=limit,
        )

    async def job_audit(self, principal: Principal, job_id: str) -> list[AuditRecord]:
        """Everything logged about one of the caller's jobs: who or what caused each command."""
        await self.job(principal, job_id)
        return await self.audit.for_job(job_id)

    async def cancel_job(self, principal: Principal, job_id: str) -> JobRecord:
        """Cancel a job; a printer it was sent to is told (now, and again if it still runs it)."""
        principal.require(Scope.WRITE)
        # The dispatcher may write the job between our read and our write (a stage, a report):
        # that is no reason to refuse a person's cancel, so read again and decide again.
        for attempt in range(CANCEL_ATTEMPTS):
            record = await self.job(principal, job_id)
            change = dispatch.cancel(record.view)
            if change.event is None:
                raise InvalidRequest(f"the job is already {record.view.state.value}")
            view = change.job
            if record.owner_id != principal.user.id:
                # The printer's owner stopped someone else's job: its submitter is told who.
                printer = record.view.assigned_printer or record.view.printer_id
                view = replace(view, reason=f"cancelled by the owner of {printer}")
            try:
                ended = await self.jobs.record_terminal(
                    view,
                    expected_version=record.version,
                    actor=Actor.user(principal.user.id),
                    detail={"reason": view.reason},
                )
            except Conflict:
                if attempt == CANCEL_ATTEMPTS - 1:
                    raise
                continue
            break
        if self.listener is not None:
            await self.listener(ended, JobEvent.CANCELLED)
        printer_id = record.view.assigned_printer
        if printer_id is not None and self.live.core is not None:
            command = self.issuer.cancel(printer_id, job_id, now=self._clock_ms())
            if await self.live.publish(command) is not PublishOutcome.NOT_SENT:
                await self.jobs.save(
                    dispatch.cancel_sent(ended.view, self._clock_ms()),
                    expected_version=ended.version,
                )
        return ended

    async def pause_or_resume(self, principal: Principal, job_id: str, *, pause: bool) -> None:
        """Pause or resume a running job (owner or operator of its printer)."""
        principal.require(Scope.WRITE)
        record = await self.job(principal, job_id)
        wanted = JobState.PRINTING if pause else JobState.PAUSED
        printer_id = record.view.assigned_printer
        if printer_id is not None:
            await self._may_act_on(principal, record, printer_id)
        if record.view.state is not wanted or printer_id is None:
            raise InvalidRequest(f"the job is {record.view.state.value}")
        now = self._clock_ms()
        command = (
            self.issuer.pause(printer_id, job_id, now=now)
            if pause
            else self.issuer.resume(printer_id, job_id, now=now)
        )
        await self.live.send(principal.user.id, command, "job.pause" if pause else "job.resume")


def _check_priority(priority: int) -> None:
    if priority not in PRIORITIES:
        raise InvalidRequest(
            f"priority must be between {PRIORITIES[0]} and {PRIORITIES[-1]}, e.g. 10"
        )


def _requirements(
    file: FileRecord, material: str | FromFile | None, nozzle_um: int | FromFile | None
) -> Requirements:
    """What the job needs of a printer: as asked, else as the file's slicer wrote it."""
    if isinstance(material, FromFile):
        named = file.metadata.material
        # A mix ("PETG+PLA") is no one material a printer could be checked for.
        material = named if named is not None and _MATERIAL.fullmatch(named) else None
    elif material is not None and not _MATERIAL.fullmatch(material):
        raise InvalidRequest(
            f"material {material!r} is not one material name: upper case letters, digits and "
            "'-', e.g. PETG or PA-CF"
        )
    if isinstance(nozzle_um, FromFile):
        nozzle_um = file.metadata.nozzle_um
    elif nozzle_um is not None and nozzle_um not in NOZZLES_UM:
        raise InvalidRequest(
            f"nozzle_um must be between {NOZZLES_UM[0]} and {NOZZLES_UM[-1]} micrometres, "
            "e.g. 400 for 0.4 mm"
        )
    return Requirements(material=material, nozzle_um=nozzle_um)
