"""``PrinterAgent``: the protocol core, thermal protection and a Hardware port, wired to MQTT.

The agent owns the printer's tasks and carries out the core's decisions; every decision is the
``PrinterCore``'s. Its order of work is fixed: journal records are stored durably, then the
hardware acts, then events are published. Heaters are cut the moment thermal protection trips,
before anything else. The parts it wires each have a module: the broker session and its outbox
(``session``), thermal protection's loop (``thermal_watch``), staging (``staging``), telemetry
(``telemetry``) and clock sync (``time_sync``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from enum import StrEnum
from typing import Any

import httpx
import uuid_utils

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import (
    Hardware,
    HardwareError,
    HeaterId,
    Loadout,
    MessageLevel,
    PrintHandle,
    PrintOutcome,
    PrintOutcomeKind,
    Prompt,
    validate_file_name,
)
from printfleet.agent.journal_store import JournalFile
from printfleet.agent.observer import AgentObserver, CommandJudged, NoObserver
from printfleet.agent.session import BrokerSession, Outbox
from printfleet.agent.staging import FileStager
from printfleet.agent.stats import AgentStats
from printfleet.agent.telemetry import TelemetryReporter
from printfleet.agent.thermal import ThermalGuard
from printfleet.agent.thermal_watch import ThermalWatch
from printfleet.agent.time_sync import ClockSync
from printfleet.log_redaction import redact_tokens_in_logs
from printfleet.protocol.gate import (
    Action,
    CancelPrint,
    FetchFile,
    Gate,
    HeatersOff,
    PausePrint,
    PlateReading,
    PrinterState,
    RecordMaterial,
    RecordNozzle,
    ResumePrint,
    SetTarget,
    ShowMessage,
    Simulate,
    StartPrint,
)
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    PLATE_EJECTED,
    AlertBody,
    ConfirmPlateCommand,
    Event,
    JobOutcome,
    PrinterStatus,
    StartSource,
    Telemetry,
    make_event,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandVerifier
from printfleet.protocol.topics import Topics

__all__ = [
    "AUTO_EJECT",
    "PLATE_PROMPT_ID",
    "AgentStats",
    "LocalAction",
    "PrinterAgent",
    "monotonic_ms",
    "new_message_id",
]

log = logging.getLogger(__name__)

PLATE_PROMPT_ID = "plate-clear"
AUTO_EJECT = "auto-eject"
"""Who confirmed a plate that the printer's own eject routine cleared (the confirmation's
``by``, the evidence its next start is judged on)."""
STOP_PRINT_TIMEOUT_S = 10.0
_OUTCOMES = {
    PrintOutcomeKind.COMPLETED: JobOutcome.COMPLETED,
    PrintOutcomeKind.FAILED: JobOutcome.FAILED,
    PrintOutcomeKind.CANCELLED: JobOutcome.CANCELLED,
}
_RUNNING = frozenset({PrinterStatus.PRINTING, PrinterStatus.PAUSED})
_LEVELS = {
    "info": MessageLevel.INFO,
    "prompt": MessageLevel.INFO,
    "warning": MessageLevel.WARNING,
    "critical": MessageLevel.ERROR,
}


def monotonic_ms() -> int:
    """The printer's local clock for the protocol: monotonic milliseconds."""
    return time.monotonic_ns() // 1_000_000


def new_message_id() -> str:
    """A time-ordered UUIDv7, as the protocol asks."""
    return str(uuid_utils.uuid7())


class LocalAction(StrEnum):
    """What a person at the printer (its screen or its LAN API) may do besides starting."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    CONFIRM_PLATE = "confirm_plate"
    CLEAR_FAULT = "clear_fault"


class PrinterAgent:
    """One printer's agent. ``run()`` until cancelled; ``ready`` is set while connected.

    Everything the agent starts runs inside ``run()``'s task group, so cancelling ``run()`` leaves
    nothing behind: a stopped agent neither watches prints nor writes its journal any more.
    """

    def __init__(
        self,
        config: AgentConfig,
        hardware: Hardware,
        *,
        journal: JournalFile | None = None,
        clock_ms: Callable[[], int] = monotonic_ms,
        http: httpx.AsyncClient | None = None,
        gate: Gate | None = None,
        observer: AgentObserver | None = None,
    ) -> None:
        self.config = config
        self.gate = gate
        """The core's gate: the real one unless the chaos harness hands in its permissive one."""
        self.observer: AgentObserver = observer if observer is not None else NoObserver()
        """Told what the agent decided: nobody in production, the history in a chaos world."""
        self.hardware = hardware
        self.topics = Topics(config.topic_prefix)
        self.journal = journal or JournalFile(config.data_dir / "journal.sqlite3")
        self.stats = AgentStats()
        self.ready = asyncio.Event()
        self.guard = ThermalGuard()
        self.lan_address: tuple[str, int] | None = None
        """Where the LAN API listens, once it does (the port is chosen when 0 is asked)."""
        self.lan_ready = asyncio.Event()
        self._clock_ms = clock_ms
        self._lock = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        # Built from the journal file, which `run()` reads off the event loop.
        self._core: PrinterCore | None = None
        self._stopped_by_fault: str | None = None
        self._reports_due = 0.0
        self._outbox = Outbox(self.stats)
        self._session = BrokerSession(
            config,
            hardware,
            topics=self.topics,
            outbox=self._outbox,
            stats=self.stats,
            ready=self.ready,
            on_command=self._on_command,
            on_connected=self._on_connected,
        )
        self._thermal = ThermalWatch(hardware, self.guard, fault_latched=self._fault_latched)
        self._stager = FileStager(hardware, http)
        self._telemetry = TelemetryReporter(
            config.printer_id,
            hardware,
            self._session,
            self.stats,
            period_s=config.telemetry_period_s,
            buffer_limit=config.telemetry_buffer,
        )
        self.offline_telemetry = self._telemetry.offline
        self._clock_sync = ClockSync(self._session, self._emit, period_s=config.time_sync_period_s)

    @property
    def core(self) -> PrinterCore:
        """The protocol core: every decision is its. Exists once ``run()`` has read the journal."""
        if self._core is None:
            msg = "the agent has not read its journal yet: run() does"
            raise RuntimeError(msg)
        return self._core

    def _make_core(self, records: list[JournalRecord]) -> PrinterCore:
        """The one place the core is built: from the journal's records, judging with
        :attr:`gate` (the real gate when None)."""
        verifier = (
            CommandVerifier(self.config.cloud_public_key) if self.config.cloud_public_key else None
        )
        loadout = self.hardware.loadout()
        state = PrinterState(
            printer_id=self.config.printer_id,
            has_plate_sensor=self.hardware.has_plate_sensor,
            cloud_enabled=self.config.mode != "lan-only",
            material_slots=loadout.slot_count,
            materials=loadout.materials,
            nozzle_um=loadout.nozzle_um,
            simulated=self.hardware.simulated,
        )
        return PrinterCore(
            state,
            verifier=verifier,
            new_id=new_message_id,
            journal=Journal.replay(records),
            gate=self.gate,
        )

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every loop until cancelled."""
        name = self.config.printer_id
        # Staged files' links carry a capability token that httpx would log with each fetch.
        redact_tokens_in_logs()
        if self._core is None:
            # Read in a thread: SQLite blocks, and a fleet of agents may share this event loop.
            self._core = self._make_core(await asyncio.to_thread(self.journal.load))
        core = self._core
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                # Thermal protection first: it must not wait for the journal's upkeep or the broker.
                group.create_task(self._thermal.run(), name=f"{name}:thermal")
                group.create_task(self._fault_loop(), name=f"{name}:faults")
                await self._stop_unaccounted_print()
                # Compact at start: the file holds only what rebuilds the journal.
                await asyncio.to_thread(self.journal.compact, core.journal)
                async with self._judging():
                    await self._apply(core.recover(self._clock_ms()))
                group.create_task(self._session.run(), name=f"{name}:link")
                group.create_task(
                    self._telemetry.run(
                        core,
                        self._clock_ms,
                        read_plate=self._read_plate,
                        resend_due_reports=self._resend_due_reports,
                    ),
                    name=f"{name}:telemetry",
                )
                group.create_task(self._clock_sync.run(core, self._clock_ms), name=f"{name}:clock")
                group.create_task(self._screen_loop(), name=f"{name}:screen")
                group.create_task(self._loadout_loop(), name=f"{name}:loadout")
                if self.config.lan_listen is not None:
                    group.create_task(self._lan_loop(), name=f"{name}:lan")
        finally:
            self._group = None

    async def _stop_unaccounted_print(self) -> None:
        """Stop a print the hardware still runs from before this agent started.

        The journal reports every print it finds interrupted as failed (and never runs it again),
        so a print the hardware kept running would go on unsupervised and unaccounted for.
        """
        handle = self.hardware.current_print()
        if handle is None:
            return
        log.warning(
            "printer %s: stopping %s, left running by a previous agent",
            self.config.printer_id,
            handle.file_name,
        )
        await handle.cancel()
        try:
            async with asyncio.timeout(STOP_PRINT_TIMEOUT_S):
                await handle.wait()
        except TimeoutError:
            log.exception("printer %s: the print did not stop", self.config.printer_id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        group = self._group
        if group is None:
            coroutine.close()
            msg = "the agent is not running"
            raise RuntimeError(msg)
        group.create_task(coroutine, name=f"{self.config.printer_id}:{name}")

    @contextlib.asynccontextmanager
    async def _judging(self) -> AsyncIterator[None]:
        """Hold the lock under which the core decides, with every fault found so far latched.

        A command judged between a fault's detection and its latch would be judged as if the
        printer were healthy; latching first closes that window.
        """
        async with self._lock:
            await self._latch_pending_faults()
            yield

    # -- the link --------------------------------------------------------------------------------

    def _on_connected(self) -> None:
        """After every (re)connect, once presence is out: the whole state, a clock check, what
        the printer saw while away, and the local-job reports the cloud has not acknowledged."""
        now = self._clock_ms()
        self._emit(self.core.state_event(now))
        self._clock_sync.request(self.core, now)
        summary = self.offline_telemetry.summary(time.monotonic())
        if summary is not None:
            self._emit(self._alert("offline_summary", "info", summary))
        self._send_reports()

    def _send_reports(self) -> None:
        """Send every unacknowledged local-job report again (the cloud records each once)."""
        self._reports_due = time.monotonic() + self.config.report_retry_s
        for report in self.core.local_job_reports(self._clock_ms()):
            self.stats.reports_sent += 1
            self._emit(report)

    def _resend_due_reports(self) -> None:
        if time.monotonic() >= self._reports_due and self.core.journal.unacknowledged_reports():
            self._send_reports()

    def _emit(self, event: Event) -> None:
        """Queue an event for publishing; never waits for the network."""
        self._outbox.put(event)

    def _read_plate(self, now: int) -> None:
        """Tell the core what the plate sensor sees, if the printer has one."""
        if self.hardware.has_plate_sensor:
            self.core.plate_reading(_plate(self.hardware.read_plate()), now)

    async def _on_command(self, payload: bytes) -> None:
        self.stats.commands += 1
        async with self._judging():
            now = self._clock_ms()
            self._read_plate(now)
            output = self.core.receive(payload, now)
            if output.command is None:
                self.stats.malformed += 1
                log.warning(
                    "printer %s refused an undecodable command: %s",
                    self.config.printer_id,
                    output.decision.detail,
                )
            self.observer.command_judged(
                CommandJudged(self.config.printer_id, output.command, output.decision)
            )
            await self._apply(output)
            if isinstance(output.command, ConfirmPlateCommand) and output.decision.accepted:
                # Confirmed remotely: the question on the screen has been answered.
                await self.hardware.screen.withdraw_prompt(PLATE_PROMPT_ID)

    # -- applying decisions ----------------------------------------------------------------------

    async def _apply(self, output: Output) -> None:
        """Persist, act, publish — in that order. Call with ``self._lock`` held.

        What the actions lead to (an alert, a print that could not start) comes after the
        decision's own events, as its own decision.
        """
        if output.records:
            await asyncio.to_thread(self.journal.append, output.records)
            self._follow_records(output.records)
        consequences: list[Event | Output] = []
        for action in output.actions:
            consequences.extend(await self._act(action))
        for event in output.events:
            self._emit(event)
        for consequence in consequences:
            if isinstance(consequence, Output):
                await self._apply(consequence)
            else:
                self._emit(consequence)

    def _follow_records(self, records: Iterable[JournalRecord]) -> None:
        for record in records:
            if record.kind is RecordKind.FAULT_CLEARED:
                # A person cleared the fault: thermal protection's latch goes with the core's,
                # or it would refuse every target from now on.
                self.guard.clear(record.detail or "a person")
                self.observer.fault_cleared(self.config.printer_id)
                self._stopped_by_fault = None

    async def _act(self, action: Action) -> list[Event | Output]:
        hardware = self.hardware
        handle = hardware.current_print()
        match action:
            case HeatersOff():
                await hardware.heaters_off()
            case StartPrint(job_id=job_id, name=name):
                return await self._start_print(job_id, name)
            case PausePrint() if handle is not None:
                await handle.pause()
            case ResumePrint() if handle is not None:
                await handle.resume()
            case CancelPrint() if handle is not None:
                await handle.cancel()
            case SetTarget(heater=heater, target=target):
                heater_id = HeaterId(heater.value)
                refusal = self.guard.check_target(heater_id, target)
                if refusal is not None:
                    return [self._alert("target_refused", "warning", refusal.message)]
                await hardware.set_heater_target(heater_id, target)
            case FetchFile():
                self._spawn(self._fetch(action), f"fetch {action.job_id}")
            case RecordMaterial() | RecordNozzle():
                return await self._record_loadout(action)
            case Simulate(action=simulated, fault=fault):
                try:
                    await hardware.simulate(simulated, fault)
                except HardwareError as error:
                    return [self._alert("simulation_failed", "warning", str(error))]
            case ShowMessage(text=text, level=level):
                if level == "prompt":
                    prompt = Prompt(PLATE_PROMPT_ID, text, ("The plate is clear",))
                    await hardware.screen.show_prompt(prompt)
                else:
                    await hardware.screen.show_message(text, _LEVELS.get(level, MessageLevel.INFO))
        return []

    async def _record_loadout(self, action: RecordMaterial | RecordNozzle) -> list[Event | Output]:
        """Tell the hardware what a person said is loaded; the gate checked the slot against the
        hardware's, so a refusal here means the two disagree, which a person must hear of."""
        try:
            if isinstance(action, RecordMaterial):
                await self.hardware.set_material(action.slot, action.material, action.colour)
            else:
                await self.hardware.set_nozzle(action.nozzle_um)
        except (HardwareError, ValueError) as error:
            return [self._alert("loadout_refused", "warning", str(error)[:500])]
        return []

    async def _start_print(self, job_id: str, name: str) -> list[Event | Output]:
        try:
            handle = await self.hardware.start_print(name)
        except (HardwareError, OSError) as error:
            # The gate journaled the start; the job can never run again here, so it fails now.
            log.exception("printer %s could not start %s", self.config.printer_id, name)
            return [self.core.print_ended(JobOutcome.FAILED, str(error), self._clock_ms())]
        self._spawn(self._watch_print(job_id, handle), f"print {job_id}")
        return []

    async def _watch_print(self, job_id: str, handle: PrintHandle) -> None:
        outcome: PrintOutcome = await handle.wait()
        async with self._judging():
            result, detail = _OUTCOMES[outcome.kind], outcome.reason
            if result is JobOutcome.CANCELLED and self._stopped_by_fault == job_id:
                # Thermal protection stopped it, not a person: the job failed, and says why.
                result, detail = JobOutcome.FAILED, f"stopped by thermal protection: {detail}"
                if self.core.state.fault is not None:
                    detail = f"stopped by thermal protection: {self.core.state.fault}"
            await self._apply(self.core.print_ended(result, detail, self._clock_ms()))
        if result is JobOutcome.COMPLETED and self.config.plate_clearing == "auto_eject":
            # Only after a completed print: a failed or cancelled one may have left spaghetti
            # or a half-stuck part on the plate, which a person has to look at.
            await self._auto_eject()

    async def _auto_eject(self) -> None:
        """Clear the plate with the printer's eject routine and, if it reports the plate clear,
        confirm it as a person at the printer would, by :data:`AUTO_EJECT`; if it fails, leave
        the plate unconfirmed and ask for a person (alert ``plate_eject_failed``).

        Not under the lock: the routine takes a while, and commands, faults and a person's own
        confirmation must be heard meanwhile. The confirmation is judged when it is made, so it
        postdates the print's end; a sensor, where there is one, still has the last word.
        """
        printer_id = self.config.printer_id
        try:
            cleared = await self.hardware.eject_print()
            problem = "" if cleared else "the eject routine did not clear the plate"
        except HardwareError as error:
            cleared, problem = False, str(error)
        async with self._judging():
            if not cleared:
                log.warning("printer %s could not eject its print: %s", printer_id, problem)
                message = f"{printer_id} could not eject its print: clear the plate and confirm it"
                detail = f"{message} ({problem})"[:500]
                self._emit(self._alert("plate_eject_failed", "warning", detail))
                return
            output = self.core.confirm_plate_locally(AUTO_EJECT, self._clock_ms())
            await self._apply(output)
            if output.decision.accepted:
                self._emit(
                    self._alert(
                        PLATE_EJECTED,
                        "info",
                        f"{printer_id} ejected its print: plate cleared by {AUTO_EJECT}",
                    )
                )
        if output.decision.accepted:
            await self.hardware.screen.withdraw_prompt(PLATE_PROMPT_ID)

    async def _fetch(self, action: FetchFile) -> None:
        failure = await self._stager.fetch(action)
        async with self._judging():
            now = self._clock_ms()
            if failure is not None:
                log.warning(
                    "printer %s: stage of %s failed: %s",
                    self.config.printer_id,
                    action.job_id,
                    failure,
                )
                await self._apply(self.core.stage_failed(action.job_id, failure, now))
            else:
                await self._apply(self.core.staged(action.job_id, action.sha256, now))

    def _alert(self, kind: str, severity: str, message: str) -> Event:
        body = AlertBody(kind=kind, severity=severity, message=message)  # type: ignore[arg-type]
        now = self._clock_ms()
        return make_event(
            body,
            event_id=new_message_id(),
            printer_id=self.config.printer_id,
            job_id=self.core.state.job_id,
            sent_at=self.core.cloud_now(now),
        )

    # -- thermal protection ----------------------------------------------------------------------

    def _fault_latched(self) -> bool:
        """Whether the core holds a latched fault (the thermal watch keeps heaters off then)."""
        return self.core.state.fault is not None

    async def _fault_loop(self) -> None:
        while True:
            await self._thermal.found.wait()
            async with self._lock:
                await self._latch_pending_faults()

    async def _latch_pending_faults(self) -> None:
        """Latch the faults the thermal watch found, in order. Call with ``self._lock`` held."""
        for fault in self._thermal.found_faults():
            self.stats.faults.append(fault.message)
            log.error("printer %s: %s", self.config.printer_id, fault.message)
            state = self.core.state
            if state.fault is None and state.status in _RUNNING:
                self._stopped_by_fault = state.job_id
            self.observer.thermal_fault(self.config.printer_id, fault.message)
            await self._apply(self.core.thermal_fault(fault.message, self._clock_ms()))

    # -- local actions: the LAN API and the printer's screen ----------------------------------

    async def _lan_loop(self) -> None:
        # Imported here: fleets of simulated printers run without the LAN API, and its web
        # stack costs memory they should not pay.
        from printfleet.agent.lan import serve_lan  # noqa: PLC0415

        await serve_lan(self)

    async def start_local_print(self, name: str, source: StartSource) -> tuple[str, Output]:
        """Start printing a stored file for a person at the printer, under a new job id.

        The gate judges it as it judges a cloud start, bar the deadline (the person is there):
        S3 to S6. Raises FileNameError or FileNotFoundError for a file that is not stored.
        """
        validate_file_name(name)
        if name not in {stored.name for stored in await self.hardware.storage.list_files()}:
            msg = f"no file {name!r} on this printer's storage"
            raise FileNotFoundError(msg)
        job_id = new_message_id()
        async with self._judging():
            now = self._clock_ms()
            self._read_plate(now)
            output = self.core.start_locally(job_id, name, source, now)
            await self._apply(output)
        return job_id, output

    async def act_locally(self, action: LocalAction, by: str) -> Output:
        """Carry out a person's ``action`` at the printer, as the gate decides."""
        core = self.core
        async with self._judging():
            now = self._clock_ms()
            match action:
                case LocalAction.PAUSE:
                    output = core.pause_locally(now)
                case LocalAction.RESUME:
                    output = core.resume_locally(now)
                case LocalAction.CANCEL:
                    output = core.cancel_locally(now)
                case LocalAction.CONFIRM_PLATE:
                    output = core.confirm_plate_locally(by, now)
                case LocalAction.CLEAR_FAULT:
                    output = core.clear_fault_locally(by, now)
            await self._apply(output)
        if action is LocalAction.CONFIRM_PLATE and output.decision.accepted:
            await self.hardware.screen.withdraw_prompt(PLATE_PROMPT_ID)
        return output

    async def _screen_loop(self) -> None:
        while True:
            answer = await self.hardware.screen.next_answer()
            if answer.prompt_id != PLATE_PROMPT_ID:
                continue
            async with self._judging():
                output = self.core.confirm_plate_locally("person at the printer", self._clock_ms())
                await self._apply(output)
            if output.decision.accepted:
                await self.hardware.screen.withdraw_prompt(PLATE_PROMPT_ID)

    async def _loadout_loop(self) -> None:
        """Report what is loaded whenever it changes. What the core last heard is compared with
        the hardware before each wait, so a change made while the previous one was being
        reported is not missed (nothing awaits between the check and the wait)."""
        heard: Loadout | None = None
        while True:
            loadout = self.hardware.loadout()
            if loadout != heard:
                await self._loadout_changed(loadout)
                heard = loadout
                continue
            await self.hardware.next_loadout_change()

    async def _loadout_changed(self, loadout: Loadout) -> None:
        async with self._judging():
            now = self._clock_ms()
            await self._apply(self.core.loadout_reported(loadout.materials, loadout.nozzle_um, now))

    def telemetry(self) -> Telemetry:
        """The current telemetry report."""
        return self._telemetry.report(self.core, self._clock_ms())


def _plate(reading: object) -> PlateReading:
    return PlateReading(str(getattr(reading, "value", reading)))
