"""The printer-side safety gate: the one place that decides whether a command may take effect.

Pure functions from (state, journal, command, now, clock estimate) to a decision that carries
the new state, the journal records to persist *before* acting, the hardware actions, and the
events to emit. It enforces S2 (fresh), S3 (once), S4 (idle), S5 (plate) and S6 (heat) for
everything with a physical effect: start, resume, and heating.

:class:`SafetyGate` runs every check, always; it has no switch to turn one off.
:class:`printfleet.protocol.printer.PrinterCore` takes a :class:`Gate` as a port and uses a
``SafetyGate`` unless handed another: the chaos harness builds its unsafe fleet (the proof that
its checker finds what an unsafe printer does) by handing over a gate that skips checks, built
outside this package. A printer owner's own plate-check setting is no such switch: it is part of
the printer's state (``PrinterState.plate_check``), on by default, audited, and honoured here.

The state it judges (:mod:`~printfleet.protocol.printer_state`) and the answers it gives
(:mod:`~printfleet.protocol.gate_decision`) are data and live apart. What remains here is one
concept, the gate, and stays one module although it is long: the checks, the handler table that
orders them per command, and the decisions a person makes at the printer share the same checks,
so a reader follows one decision from the command to the verdict top to bottom in one file.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from printfleet.protocol.clock import ClockEstimate
from printfleet.protocol.gate_decision import (
    Action,
    CancelPrint,
    Emit,
    FetchFile,
    GateDecision,
    HeatersOff,
    PausePrint,
    RecordMaterial,
    RecordNozzle,
    Refusal,
    ResumePrint,
    SetTarget,
    ShowMessage,
    Simulate,
    StartPrint,
    accept,
    refuse,
)
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    MAX_MILLIS,
    AckBody,
    AlertBody,
    CancelCommand,
    ClearFaultCommand,
    CommandBase,
    ConfirmPlateCommand,
    JobEndedBody,
    JobOutcome,
    JobStartedBody,
    JournalStatus,
    PauseCommand,
    PrinterStatus,
    ResumeCommand,
    SetMaterialCommand,
    SetNozzleCommand,
    SetPlateCheckCommand,
    SetTemperatureCommand,
    SimulateAction,
    SimulateCommand,
    StageCommand,
    StagedBody,
    StartCommand,
    StartSource,
)
from printfleet.protocol.printer_state import (
    GateSettings,
    PlateConfirmation,
    PlateReading,
    PrinterState,
    SensorReading,
    missing_slot,
    with_material,
)
from printfleet.protocol.reasons import Reason

# The state the gate judges and the answers it gives have modules of their own; callers across
# printfleet import them from here, with the gate that uses them.
__all__ = [
    "Action",
    "CancelPrint",
    "Emit",
    "FetchFile",
    "Gate",
    "GateDecision",
    "GateSettings",
    "HeatersOff",
    "PausePrint",
    "PlateConfirmation",
    "PlateReading",
    "PrinterState",
    "RecordMaterial",
    "RecordNozzle",
    "Refusal",
    "ResumePrint",
    "SafetyGate",
    "SensorReading",
    "SetTarget",
    "ShowMessage",
    "Simulate",
    "StartPrint",
    "accept",
    "cancel_locally",
    "clear_fault",
    "confirm_plate_locally",
    "pause_locally",
    "record_plate_reading",
    "record_print_ended",
    "record_staged",
    "record_thermal_fault",
    "refuse",
    "resume_locally",
]


def _refuse_command(state: PrinterState, command: CommandBase, refusal: Refusal) -> GateDecision:
    command_type = str(getattr(command, "type", "unknown"))
    return refuse(
        state, refusal, command_type=command_type, command_id=command.id, job_id=command.job_id
    )


# ---------------------------------------------------------------------------------------------
# The gate: its checks, each returning None when satisfied or the refusal, and its entry points.


class Gate(Protocol):
    """What :class:`printfleet.protocol.printer.PrinterCore` asks of a gate (a port: the real one
    is :class:`SafetyGate`)."""

    def check_signature(self, *, verified: bool) -> Refusal | None:
        """Whether a command whose signature did (not) check out may be heard at all."""
        ...

    def evaluate(
        self,
        state: PrinterState,
        journal: Journal,
        command: CommandBase,
        *,
        verified: bool,
        now_local: int,
        clock: ClockEstimate | None,
        settings: GateSettings,
    ) -> GateDecision:
        """Decide one decoded command (see :meth:`SafetyGate.evaluate`)."""
        ...

    def start_locally(
        self,
        state: PrinterState,
        journal: Journal,
        *,
        job_id: str,
        name: str,
        source: StartSource,
        now_local: int,
        settings: GateSettings,
    ) -> GateDecision:
        """Decide a start a person makes at the printer (see :meth:`SafetyGate.start_locally`)."""
        ...


class SafetyGate:
    """The printer's gate: every check, in order, for every command."""

    # -- the checks -------------------------------------------------------------------------------

    def check_signature(self, *, verified: bool) -> Refusal | None:
        """Only the cloud's key speaks for the cloud."""
        return None if verified else Refusal(Reason.BAD_SIGNATURE, "signature invalid")

    def check_duplicate(self, journal: Journal, command: CommandBase) -> Refusal | None:
        """A copy of a command already judged is refused, whatever the first verdict was."""
        if journal.seen_command(command.id):
            return Refusal(Reason.DUPLICATE, "command already seen")
        return None

    def check_fresh(
        self,
        command: CommandBase,
        now_local: int,
        clock: ClockEstimate | None,
        settings: GateSettings,
    ) -> Refusal | None:
        """S2: the deadline must hold even at the latest instant cloud time may be now."""
        if clock is None or clock.bound > settings.max_clock_bound_ms:
            bound = "unknown" if clock is None else f"±{clock.bound} ms"
            return Refusal(Reason.CLOCK_UNSYNCED, f"offset to cloud time is {bound}")
        lifetime = command.not_after - command.issued_at
        if lifetime > settings.max_command_lifetime_ms or lifetime < 0:
            return Refusal(Reason.WINDOW_TOO_LONG, f"valid for {lifetime} ms")
        cloud = clock.cloud_time(now_local)
        if command.issued_at > cloud.latest + settings.future_tolerance_ms:
            return Refusal(
                Reason.NOT_YET_VALID, f"issued {command.issued_at - cloud.latest} ms ahead"
            )
        if cloud.latest > command.not_after:
            return Refusal(
                Reason.STALE, f"deadline passed up to {cloud.latest - command.not_after} ms ago"
            )
        return None

    def check_plate(
        self,
        state: PrinterState,
        now_local: int,
        settings: GateSettings,
        *,
        required: bool = False,
    ) -> Refusal | None:
        """S5: a sensor reads clear right now, or a fresh confirmation postdates the last print.

        Skipped only when the printer's own setting is off and the command does not ask for it
        (``required``: the cloud's desired setting, which may be newer than the printer's).
        """
        if not (state.plate_check or required):
            return None
        if state.has_plate_sensor and state.sensor is not None:
            age = now_local - state.sensor.at_local
            if age <= settings.sensor_reading_max_age_ms:
                if state.sensor.value is PlateReading.CLEAR:
                    return None
                if state.sensor.value is PlateReading.OCCUPIED:
                    return Refusal(
                        Reason.PLATE_NOT_CLEAR, "the plate sensor sees something on the plate"
                    )
            # A sensor that cannot tell, or has not read lately, falls back to a person's word.
        confirmation = state.confirmation
        if confirmation is None:
            return Refusal(
                Reason.PLATE_UNCONFIRMED, "confirm the plate is clear before the next print"
            )
        if now_local - confirmation.at_local > settings.confirmation_max_age_ms:
            return Refusal(
                Reason.PLATE_UNCONFIRMED, "the plate confirmation is too old; confirm again"
            )
        if (
            state.last_print_ended_local is not None
            and confirmation.at_local <= state.last_print_ended_local
        ):
            return Refusal(Reason.CONFIRMATION_OUTDATED, "the confirmation predates the last print")
        return None

    def check_once(self, journal: Journal, job_id: str) -> Refusal | None:
        """S3: a job never started here before."""
        if journal.job_status(job_id).ever_started:
            return Refusal(Reason.ALREADY_STARTED, "this job already started on this printer")
        return None

    def check_idle(self, state: PrinterState) -> Refusal | None:
        """S4: nothing else runs."""
        if state.status is not PrinterStatus.IDLE:
            return Refusal(Reason.BUSY, f"printer is {state.status.value}")
        return None

    def check_may_heat(self, state: PrinterState) -> Refusal | None:
        """S6: no heating with a latched fault."""
        if state.fault is not None:
            return Refusal(Reason.THERMAL_FAULT, state.fault)
        return None

    def check_can_start(self, state: PrinterState, job_id: str, journal: Journal) -> Refusal | None:
        """S3, S4, S6: never started here, not cancelled, no latched fault, idle."""
        return _first(
            lambda: self.check_once(journal, job_id),
            lambda: (
                Refusal(Reason.JOB_CANCELLED, "this job was cancelled")
                if journal.job_status(job_id) is JournalStatus.CANCELLED
                else None
            ),
            lambda: Refusal(Reason.THERMAL_FAULT, state.fault) if state.fault is not None else None,
            lambda: self.check_idle(state),
        )

    # -- entry points -----------------------------------------------------------------------------

    def evaluate(
        self,
        state: PrinterState,
        journal: Journal,
        command: CommandBase,
        *,
        verified: bool,
        now_local: int,
        clock: ClockEstimate | None,
        settings: GateSettings,
    ) -> GateDecision:
        """Decide one decoded command. ``verified`` says whether its signature checked out.

        Journal queries and time replies are answered by :class:`printfleet.protocol.printer.
        PrinterCore`, which owns the journal and the clock; they never reach this method.
        """
        refusal = self.check_signature(verified=verified)
        if refusal is not None:
            return _refuse_command(state, command, refusal)
        if command.printer_id != state.printer_id:
            return _refuse_command(
                state, command, Refusal(Reason.WRONG_PRINTER, command.printer_id)
            )
        refusal = self.check_duplicate(journal, command)
        if refusal is not None:
            return _refuse_command(state, command, refusal)
        # From here on the command is consumed: whatever the verdict, a copy gets DUPLICATE.
        seen = (_seen_record(command, clock),)
        if not state.cloud_enabled:
            refusal = Refusal(Reason.CLOUD_DISABLED, "LAN-only mode")
            return replace(_refuse_command(state, command, refusal), records=seen)
        handler = _HANDLERS.get(type(command))
        if handler is None:
            msg = f"{type(command).__name__} is answered by PrinterCore, not the gate"
            raise TypeError(msg)
        context = _Context(self, state, journal, now_local, clock, settings)
        decision = handler(context, command)
        return replace(decision, records=seen + decision.records)

    def start_locally(
        self,
        state: PrinterState,
        journal: Journal,
        *,
        job_id: str,
        name: str,
        source: StartSource,
        now_local: int,
        settings: GateSettings,
    ) -> GateDecision:
        """A person at the printer (screen or LAN) starts a file from storage.

        The person is the intent (S1) and is present, so no deadline applies; S3 to S6 still do.
        """
        refusal = self.check_can_start(state, job_id, journal) or self.check_plate(
            state, now_local, settings
        )
        if refusal is not None:
            return refuse(state, refusal, command_type=f"{source.value}_start", job_id=job_id)
        return _begin(state, job_id, name, source, None)


def _seen_record(command: CommandBase, clock: ClockEstimate | None) -> JournalRecord:
    # Keep the id for as long as a copy could still pass the freshness check, plus the bound.
    margin = clock.bound if clock is not None else 0
    return JournalRecord(
        kind=RecordKind.COMMAND_SEEN,
        command_id=command.id,
        job_id=command.job_id,
        keep_until=min(command.not_after + margin + 1, MAX_MILLIS),
    )


def _ack(command: CommandBase) -> Emit:
    command_type = str(getattr(command, "type", "unknown"))
    return Emit(AckBody(command_id=command.id, command_type=command_type), command.job_id)


@dataclass(frozen=True, slots=True)
class _Context:
    gate: SafetyGate
    state: PrinterState
    journal: Journal
    now_local: int
    clock: ClockEstimate | None
    settings: GateSettings

    def fresh(self, command: CommandBase) -> Refusal | None:
        return self.gate.check_fresh(command, self.now_local, self.clock, self.settings)


def _first(*checks: Callable[[], Refusal | None]) -> Refusal | None:
    """The first failing check, evaluating lazily in order."""
    for check in checks:
        refusal = check()
        if refusal is not None:
            return refusal
    return None


def _on_stage(ctx: _Context, command: StageCommand) -> GateDecision:
    # No physical effect, but a late copy still has no business fetching anything.
    refusal = ctx.fresh(command)
    if refusal is None and ctx.journal.job_status(command.job_id) is JournalStatus.CANCELLED:
        refusal = Refusal(Reason.JOB_CANCELLED, "cancelled")
    if refusal is not None:
        return _refuse_command(ctx.state, command, refusal)
    body = command.body
    fetch = FetchFile(command.job_id, body.file_url, body.sha256, body.size, body.name)
    return accept(ctx.state, actions=(fetch,), events=(_ack(command),))


def _on_start(ctx: _Context, command: StartCommand) -> GateDecision:
    refusal = _first(
        lambda: ctx.fresh(command),
        lambda: ctx.gate.check_can_start(ctx.state, command.job_id, ctx.journal),
        lambda: _check_staged(ctx.state, command.job_id, command.body.sha256),
        lambda: ctx.gate.check_plate(
            ctx.state, ctx.now_local, ctx.settings, required=command.body.plate_check
        ),
    )
    if refusal is not None:
        return _refuse_command(ctx.state, command, refusal)
    return _begin(ctx.state, command.job_id, command.body.name, StartSource.CLOUD, command)


def _on_resume(ctx: _Context, command: ResumeCommand) -> GateDecision:
    state = ctx.state
    refusal = _first(
        lambda: ctx.fresh(command),
        lambda: Refusal(Reason.THERMAL_FAULT, state.fault) if state.fault is not None else None,
        lambda: (
            Refusal(Reason.NOT_PAUSED, f"printer is {state.status.value}")
            if state.status is not PrinterStatus.PAUSED
            else None
        ),
        lambda: (
            Refusal(Reason.NO_SUCH_JOB, "a different job is paused")
            if state.job_id != command.job_id
            else None
        ),
    )
    if refusal is not None:
        return _refuse_command(state, command, refusal)
    resumed = replace(state, status=PrinterStatus.PRINTING)
    return accept(resumed, actions=(ResumePrint(),), events=(_ack(command),))


def _on_pause(ctx: _Context, command: PauseCommand) -> GateDecision:
    # A late pause would surprise whoever resumed the print since: judged fresh like the rest.
    state = ctx.state
    refusal = ctx.fresh(command)
    if refusal is None and (
        state.status is not PrinterStatus.PRINTING or state.job_id != command.job_id
    ):
        refusal = Refusal(Reason.NO_SUCH_JOB, "that job is not printing here")
    if refusal is not None:
        return _refuse_command(state, command, refusal)
    paused = replace(state, status=PrinterStatus.PAUSED)
    return accept(paused, actions=(PausePrint(),), events=(_ack(command),))


def _on_cancel(ctx: _Context, command: CancelCommand) -> GateDecision:
    # Always honoured, however late: it can only stop things. It is journaled too, so that a
    # start for this job still in flight can never take effect here.
    state = ctx.state
    running = state.job_id == command.job_id and state.status in {
        PrinterStatus.PRINTING,
        PrinterStatus.PAUSED,
    }
    staged = {k: v for k, v in state.staged.items() if k != command.job_id}
    return accept(
        replace(state, staged=staged),
        records=(JournalRecord(kind=RecordKind.JOB_CANCELLED, job_id=command.job_id),),
        actions=(CancelPrint(),) if running else (),
        events=(_ack(command),),
    )


def _on_confirm_plate(ctx: _Context, command: ConfirmPlateCommand) -> GateDecision:
    state, clock = ctx.state, ctx.clock

    def outdated() -> Refusal | None:
        if clock is None or state.last_print_ended_local is None:
            return None
        # Issued before the last print ended (at worst clock error): it speaks of a plate
        # that held something else.
        earliest_issue_local, _ = clock.to_local(command.issued_at)
        if earliest_issue_local <= state.last_print_ended_local:
            return Refusal(Reason.CONFIRMATION_OUTDATED, "issued before the last print ended")
        return None

    refusal = _first(
        lambda: ctx.fresh(command),
        lambda: (
            Refusal(Reason.BUSY, "the plate holds the running print")
            if state.status in {PrinterStatus.PRINTING, PrinterStatus.PAUSED}
            else None
        ),
        outdated,
    )
    if refusal is not None:
        return _refuse_command(state, command, refusal)
    confirmation = PlateConfirmation(ctx.now_local, command.body.confirmed_by, remote=True)
    return accept(replace(state, confirmation=confirmation), events=(_ack(command),))


def _on_clear_fault(ctx: _Context, command: ClearFaultCommand) -> GateDecision:
    refusal = ctx.fresh(command)
    if refusal is not None:
        return _refuse_command(ctx.state, command, refusal)
    cleared = clear_fault(ctx.state, command.body.cleared_by)
    return replace(cleared, events=(_ack(command), *cleared.events))


def _on_set_plate_check(ctx: _Context, command: SetPlateCheckCommand) -> GateDecision:
    refusal = ctx.fresh(command)
    if refusal is not None:
        return _refuse_command(ctx.state, command, refusal)
    body = command.body
    if body.enabled == ctx.state.plate_check:
        # The cloud re-sends the owner's setting until it sees it reported: a copy that
        # changes nothing alerts nobody, but the state goes out again so the cloud hears it.
        return accept(ctx.state, events=(_ack(command),), announce=True)
    word = "on" if body.enabled else "OFF"
    alert = AlertBody(
        kind="plate_check_changed",
        severity="info" if body.enabled else "warning",
        message=f"Plate check turned {word} by {body.changed_by}",
    )
    return accept(
        replace(ctx.state, plate_check=body.enabled),
        records=(JournalRecord(kind=RecordKind.PLATE_CHECK_SET, enabled=body.enabled),),
        actions=(ShowMessage(alert.message, alert.severity),),
        events=(_ack(command), Emit(alert)),
    )


def _on_set_temperature(ctx: _Context, command: SetTemperatureCommand) -> GateDecision:
    body = command.body
    if body.target > 0:
        # Heating is a physical effect: fresh, and never with a latched fault (S6).
        refusal = _first(
            lambda: ctx.fresh(command),
            lambda: ctx.gate.check_may_heat(ctx.state),
        )
        if refusal is not None:
            return _refuse_command(ctx.state, command, refusal)
    return accept(
        ctx.state, actions=(SetTarget(body.heater, body.target),), events=(_ack(command),)
    )


def _on_set_material(ctx: _Context, command: SetMaterialCommand) -> GateDecision:
    # No physical effect, but a late copy could undo a person's newer word: judged fresh.
    state, body = ctx.state, command.body
    refusal = _first(
        lambda: ctx.fresh(command),
        lambda: _missing_slot(state, body.slot),
    )
    if refusal is not None:
        return _refuse_command(state, command, refusal)
    materials = with_material(state.materials, body.slot, body.material, body.colour)
    # Announced even when nothing changed: the sender waits to see it reported.
    return accept(
        replace(state, materials=materials),
        actions=(RecordMaterial(body.slot, body.material, body.colour),),
        events=(_ack(command),),
        announce=True,
    )


def _missing_slot(state: PrinterState, slot: int) -> Refusal | None:
    problem = missing_slot(slot, state.material_slots)
    return None if problem is None else Refusal(Reason.MALFORMED, problem)


def _on_set_nozzle(ctx: _Context, command: SetNozzleCommand) -> GateDecision:
    refusal = ctx.fresh(command)
    if refusal is not None:
        return _refuse_command(ctx.state, command, refusal)
    nozzle_um = command.body.nozzle_um
    return accept(
        replace(ctx.state, nozzle_um=nozzle_um),
        actions=(RecordNozzle(nozzle_um),),
        events=(_ack(command),),
        announce=True,
    )


def _on_simulate(ctx: _Context, command: SimulateCommand) -> GateDecision:
    # A fault on a real printer is no test: only a simulated one acts anything out.
    state, body = ctx.state, command.body
    refusal = _first(
        lambda: ctx.fresh(command),
        lambda: (
            None
            if state.simulated
            else Refusal(Reason.NOT_SIMULATED, "not a simulated printer: nothing is acted out")
        ),
        lambda: (
            Refusal(Reason.BUSY, "the plate holds the running print")
            if body.action is SimulateAction.REMOVE_PRINT
            and state.status in {PrinterStatus.PRINTING, PrinterStatus.PAUSED}
            else None
        ),
    )
    if refusal is not None:
        return _refuse_command(state, command, refusal)
    return accept(
        state, actions=(Simulate(body.action.value, body.fault),), events=(_ack(command),)
    )


_HANDLERS: dict[type[CommandBase], Callable[[_Context, Any], GateDecision]] = {
    StageCommand: _on_stage,
    StartCommand: _on_start,
    ResumeCommand: _on_resume,
    PauseCommand: _on_pause,
    CancelCommand: _on_cancel,
    ConfirmPlateCommand: _on_confirm_plate,
    ClearFaultCommand: _on_clear_fault,
    SetPlateCheckCommand: _on_set_plate_check,
    SetTemperatureCommand: _on_set_temperature,
    SetMaterialCommand: _on_set_material,
    SetNozzleCommand: _on_set_nozzle,
    SimulateCommand: _on_simulate,
}


def _check_staged(state: PrinterState, job_id: str, sha256: str) -> Refusal | None:
    staged = state.staged.get(job_id)
    if staged is None:
        return Refusal(Reason.NOT_STAGED, "the file for this job is not on this printer")
    if staged != sha256:
        return Refusal(Reason.NOT_STAGED, "the staged file has a different checksum")
    return None


def _begin(
    state: PrinterState,
    job_id: str,
    name: str,
    source: StartSource,
    command: CommandBase | None,
) -> GateDecision:
    started = replace(
        state,
        status=PrinterStatus.PRINTING,
        job_id=job_id,
        # One confirmation, one print: the next print needs a new one.
        confirmation=None,
        sensor=None,
    )
    command_id = command.id if command is not None else None
    events: list[Emit] = [] if command is None else [_ack(command)]
    events.append(Emit(JobStartedBody(source=source, command_id=command_id, name=name), job_id))
    local = source is not StartSource.CLOUD
    # A local start names its source and file, so that its end can be reported (LAN mode).
    record = JournalRecord(
        kind=RecordKind.JOB_STARTED,
        job_id=job_id,
        command_id=command_id,
        source=source if local else None,
        name=name if local else None,
    )
    return accept(
        started, records=(record,), actions=(StartPrint(job_id, name),), events=tuple(events)
    )


def _local_refusal(state: PrinterState, wanted: PrinterStatus) -> Refusal | None:
    if state.status is not wanted or state.job_id is None:
        return Refusal(
            Reason.NO_SUCH_JOB, f"nothing is {wanted.value}: the printer is {state.status.value}"
        )
    return None


def pause_locally(state: PrinterState) -> GateDecision:
    """A person at the printer (screen or LAN) pauses the running print."""
    refusal = _local_refusal(state, PrinterStatus.PRINTING)
    if refusal is not None:
        return refuse(state, refusal, command_type="pause", job_id=state.job_id)
    return accept(replace(state, status=PrinterStatus.PAUSED), actions=(PausePrint(),))


def resume_locally(state: PrinterState) -> GateDecision:
    """A person at the printer resumes the paused print; never with a latched fault (S6)."""
    refusal = _first(
        lambda: Refusal(Reason.THERMAL_FAULT, state.fault) if state.fault is not None else None,
        lambda: _local_refusal(state, PrinterStatus.PAUSED),
    )
    if refusal is not None:
        return refuse(state, refusal, command_type="resume", job_id=state.job_id)
    return accept(replace(state, status=PrinterStatus.PRINTING), actions=(ResumePrint(),))


def cancel_locally(state: PrinterState) -> GateDecision:
    """A person at the printer cancels the running or paused print; the end is the hardware's
    to report. Journaled like a cloud cancel, so the job can never start here again."""
    job_id = state.job_id
    if job_id is None or state.status not in {PrinterStatus.PRINTING, PrinterStatus.PAUSED}:
        refusal = Refusal(
            Reason.NO_SUCH_JOB, f"nothing to cancel: the printer is {state.status.value}"
        )
        return refuse(state, refusal, command_type="cancel")
    return accept(
        state,
        records=(JournalRecord(kind=RecordKind.JOB_CANCELLED, job_id=job_id),),
        actions=(CancelPrint(),),
    )


def confirm_plate_locally(state: PrinterState, *, by: str, now_local: int) -> GateDecision:
    """A person at the printer confirmed the plate is clear."""
    if state.status in {PrinterStatus.PRINTING, PrinterStatus.PAUSED}:
        busy = Refusal(Reason.BUSY, "the plate holds the running print")
        return refuse(state, busy, command_type="confirm_plate")
    return accept(replace(state, confirmation=PlateConfirmation(now_local, by, remote=False)))


def record_plate_reading(
    state: PrinterState, reading: PlateReading, *, now_local: int
) -> PrinterState:
    """Fold in a fresh plate sensor reading."""
    return replace(state, sensor=SensorReading(reading, now_local))


def record_staged(state: PrinterState, job_id: str, sha256: str) -> GateDecision:
    """A fetched file checked out; it may now be started."""
    staged = replace(state, staged={**state.staged, job_id: sha256})
    return accept(staged, events=(Emit(StagedBody(sha256=sha256), job_id),))


def record_print_ended(
    state: PrinterState, outcome: JobOutcome, *, detail: str, now_local: int
) -> GateDecision:
    """The hardware finished, failed or cancelled the running print.

    Whatever remains on the plate, the old confirmation no longer speaks for it.
    """
    job_id = state.job_id
    ended = replace(
        state,
        status=PrinterStatus.ERROR if state.fault is not None else PrinterStatus.IDLE,
        job_id=None,
        last_print_ended_local=now_local,
        confirmation=None,
        sensor=None,
        staged={k: v for k, v in state.staged.items() if k != job_id},
    )
    records: tuple[JournalRecord, ...] = ()
    events: list[Emit] = []
    if job_id is not None:
        records = (JournalRecord(kind=RecordKind.JOB_ENDED, job_id=job_id, outcome=outcome),)
        events.append(Emit(JobEndedBody(outcome=outcome, detail=detail[:500]), job_id))
    actions: tuple[Action, ...] = ()
    if state.plate_check and not state.has_plate_sensor:
        prompt = "Remove the print, then confirm the plate is clear"
        actions = (ShowMessage(prompt, "prompt"),)
        events.append(
            Emit(AlertBody(kind="plate_confirmation_needed", severity="info", message=prompt))
        )
    return accept(ended, records=records, actions=actions, events=tuple(events))


def record_thermal_fault(state: PrinterState, message: str) -> GateDecision:
    """S6: latch the fault, cut the heaters, stop the print, tell everyone."""
    if state.fault is not None:
        return accept(state, actions=(HeatersOff(),))
    printing = state.status in {PrinterStatus.PRINTING, PrinterStatus.PAUSED}
    # The job id stays until the hardware reports the cancelled print's end as failed.
    faulted = replace(state, status=PrinterStatus.ERROR, fault=message[:500])
    stop: tuple[Action, ...] = (CancelPrint(),) if printing else ()
    alert = AlertBody(kind="thermal_fault", severity="critical", message=message[:500])
    return accept(
        faulted,
        records=(JournalRecord(kind=RecordKind.FAULT_LATCHED, detail=message[:500]),),
        actions=(HeatersOff(), *stop, ShowMessage(message, "critical")),
        events=(Emit(alert, state.job_id),),
    )


def clear_fault(state: PrinterState, by: str) -> GateDecision:
    """A person cleared the latched fault; the printer may heat again.

    If the cancelled print has not reported its end yet, the printer stays busy until it does.
    """
    if state.fault is None:
        return accept(state)
    status = PrinterStatus.IDLE if state.job_id is None else PrinterStatus.PRINTING
    alert = AlertBody(kind="fault_cleared", severity="info", message=f"Fault cleared by {by}")
    return accept(
        replace(state, fault=None, status=status),
        records=(JournalRecord(kind=RecordKind.FAULT_CLEARED, detail=by[:500]),),
        events=(Emit(alert),),
    )
