"""``PrinterAgent``: the protocol core, thermal protection and a Hardware port, wired to MQTT.

The agent does I/O and timing and little else: every decision is the ``PrinterCore``'s. Its
order of work is fixed: journal records are stored durably, then the hardware acts, then events
are published. Heaters are cut the moment thermal protection trips, before anything else.
"""

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiomqtt
import httpx
import stamina
import uuid_utils

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import (
    Hardware,
    HardwareError,
    HeaterId,
    HeaterReading,
    MessageLevel,
    PrintHandle,
    PrintOutcome,
    PrintOutcomeKind,
    Prompt,
    validate_file_name,
)
from printfleet.agent.journal_store import JournalFile
from printfleet.agent.thermal import READING_PERIOD, ThermalFault, ThermalGuard
from printfleet.log_redaction import redact, redact_tokens_in_logs
from printfleet.protocol.gate import (
    Action,
    CancelPrint,
    FetchFile,
    GateSettings,
    HeatersOff,
    PausePrint,
    PlateReading,
    PrinterState,
    ResumePrint,
    SetTarget,
    ShowMessage,
    StartPrint,
)
from printfleet.protocol.identities import printer_client_id
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    AlertBody,
    ConfirmPlateCommand,
    Event,
    HeaterTelemetry,
    JobOutcome,
    Presence,
    PrinterStatus,
    ProgressTelemetry,
    StartSource,
    Telemetry,
    encode,
    make_event,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandVerifier
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)
_history = logging.getLogger("printfleet.history")
"""Structured events for the chaos harness's checker; silent unless it listens."""

OUTBOX_LIMIT = 256
"""Events kept while the broker is unreachable; the oldest go first beyond this."""
MAX_FILE_BYTES = 512 * 1024 * 1024
PLATE_PROMPT_ID = "plate-clear"
PUBLISH_TIMEOUT_S = 10.0
"""A QoS 1 publish not acknowledged within this long ends the session: the link is not working."""
CONNECT_TIMEOUT_S = 10.0
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


@dataclass(slots=True)
class OfflineTelemetry:
    """Telemetry taken while the broker was unreachable: the newest ``limit`` reports as
    (status, hotend d°C, bed d°C), and how many more were taken; summarised on return."""

    limit: int
    kept: deque[tuple[str, int, int]] = field(default_factory=deque)
    dropped: int = 0
    since_s: float | None = None

    def add(self, report: Telemetry, now_s: float) -> None:
        """Keep one report, dropping the oldest beyond the limit."""
        if self.since_s is None:
            self.since_s = now_s
        if len(self.kept) >= self.limit:
            self.kept.popleft()
            self.dropped += 1
        self.kept.append((report.status.value, report.hotend.temp_dc, report.bed.temp_dc))

    def summary(self, now_s: float) -> str | None:
        """One line on the outage, or None if nothing was taken; empties the buffer."""
        if not self.kept:
            return None
        statuses = ", ".join(dict.fromkeys(status for status, _, _ in self.kept))
        hotend = max(hotend for _, hotend, _ in self.kept) / 10
        bed = max(bed for _, _, bed in self.kept) / 10
        taken = len(self.kept) + self.dropped
        offline_s = now_s - (self.since_s or now_s)
        self.kept.clear()
        self.dropped, self.since_s = 0, None
        return (
            f"Offline for {offline_s:.0f} s: {taken} telemetry reports not sent; "
            f"the last {min(taken, self.limit)} showed {statuses}, "
            f"hotend up to {hotend:.1f} °C, bed up to {bed:.1f} °C"
        )


class _SessionEnded(Exception):  # noqa: N818 - a signal between two loops, not an error
    """A connected session dropped; reconnect with a fresh client and a fresh backoff."""


@dataclass
class AgentStats:
    """Counters a test or an operator can read."""

    connects: int = 0
    commands: int = 0
    malformed: int = 0
    retained_dropped: int = 0
    events_dropped: int = 0
    telemetry_sent: int = 0
    reports_sent: int = 0
    faults: list[str] = field(default_factory=list)


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
        gate_settings: GateSettings | None = None,
    ) -> None:
        self.config = config
        self.gate_settings = gate_settings
        """Only the chaos harness's ``--safeguards off`` passes anything but the defaults."""
        self.hardware = hardware
        self.topics = Topics(config.topic_prefix)
        self.journal = journal or JournalFile(config.data_dir / "journal.sqlite3")
        self.stats = AgentStats()
        self.ready = asyncio.Event()
        self.guard = ThermalGuard()
        self._clock_ms = clock_ms
        self._http = http
        self._lock = asyncio.Lock()
        self._client: aiomqtt.Client | None = None
        self._group: asyncio.TaskGroup | None = None
        # Events wait here until the session's publisher has them acknowledged, in order.
        self._outbox: deque[Event] = deque()
        self._outbox_filled = asyncio.Event()
        # Faults the thermal loop found, waiting to be latched in the core (under the lock).
        self._pending_faults: deque[ThermalFault] = deque()
        self._faults_found = asyncio.Event()
        self._stopped_by_fault: str | None = None
        self._progress_floor: tuple[str | None, int] = (None, 0)
        self._telemetry_seq = 0
        self.offline_telemetry = OfflineTelemetry(config.telemetry_buffer)
        self._reports_due = 0.0
        self.lan_address: tuple[str, int] | None = None
        """Where the LAN API listens, once it does (the port is chosen when 0 is asked)."""
        self.lan_ready = asyncio.Event()
        self.core = self._make_core()

    def _make_core(self) -> PrinterCore:
        records = self.journal.load()
        verifier = (
            CommandVerifier(self.config.cloud_public_key) if self.config.cloud_public_key else None
        )
        state = PrinterState(
            printer_id=self.config.printer_id,
            has_plate_sensor=self.hardware.has_plate_sensor,
            cloud_enabled=self.config.mode != "lan-only",
        )
        return PrinterCore(
            state,
            verifier=verifier,
            new_id=new_message_id,
            journal=Journal.replay(records),
            settings=self.gate_settings,
        )

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every loop until cancelled."""
        name = self.config.printer_id
        # Staged files' links carry a capability token that httpx would log with each fetch.
        redact_tokens_in_logs()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                # Thermal protection first: it must not wait for the journal or the broker.
                group.create_task(self._thermal_loop(), name=f"{name}:thermal")
                group.create_task(self._fault_loop(), name=f"{name}:faults")
                await self._stop_unaccounted_print()
                # Compact at start: the file holds only what rebuilds the journal.
                await asyncio.to_thread(self.journal.compact, self.core.journal)
                async with self._judging():
                    await self._apply(self.core.recover(self._clock_ms()))
                group.create_task(self._link_loop(), name=f"{name}:link")
                group.create_task(self._telemetry_loop(), name=f"{name}:telemetry")
                group.create_task(self._time_sync_loop(), name=f"{name}:clock")
                group.create_task(self._screen_loop(), name=f"{name}:screen")
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

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiomqtt.Client]:
        """A connected client, bounded in time on the way in and on the way out."""
        client = self._client_for()
        async with _link_timeout(CONNECT_TIMEOUT_S):
            await client.__aenter__()
        try:
            yield client
        finally:
            # Say goodbye if the link still carries it; a link that does not is simply dropped.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await client.__aexit__(None, None, None)

    def _client_for(self) -> aiomqtt.Client:
        address = self.config.broker_address()
        will = aiomqtt.Will(
            self.topics.presence(self.config.printer_id),
            encode(Presence(printer_id=self.config.printer_id, online=False)),
            qos=1,
            retain=True,
        )
        # A fresh client per connection: nothing queued in an old one can be replayed (S9), and
        # a clean session means the broker keeps nothing for us while we are away.
        return aiomqtt.Client(
            address.host,
            address.port,
            username=address.username,
            password=address.password,
            # Derived, never the bare id: no printer id can take over the cloud's session (S10).
            identifier=printer_client_id(self.config.printer_id),
            clean_session=True,
            will=will,
            keepalive=self.config.keepalive_s,
            # Unbounded in aiomqtt, bounded by this module: see `_link_timeout`.
            timeout=math.inf,
            tls_params=aiomqtt.TLSParameters() if address.tls else None,
        )

    async def _link_loop(self) -> None:
        while True:
            async for attempt in stamina.retry_context(
                on=aiomqtt.MqttError,
                attempts=None,
                timeout=None,
                wait_initial=0.5,
                wait_max=30.0,
                wait_jitter=1.0,
            ):
                with attempt:
                    try:
                        await self._session()
                    except _SessionEnded:
                        break
            # Spread reconnects so a broker restart is not met by the whole fleet at once.
            await asyncio.sleep(random.uniform(0, 1))  # noqa: S311 - jitter, not secrecy

    async def _session(self) -> None:
        connected = False
        try:
            async with self._connection() as client:
                connected = True
                self.stats.connects += 1
                async with _link_timeout():
                    await client.subscribe(
                        self.topics.commands(self.config.printer_id), qos=1, timeout=math.inf
                    )
                await self._announce(client)
                self._client = client
                self.ready.set()
                log.info("printer %s connected", self.config.printer_id)
                try:
                    await self._serve(client)
                except asyncio.CancelledError:
                    # A clean shutdown: say so, since the broker sends the Will only on a drop.
                    await self._say_offline(client)
                    raise
        except aiomqtt.MqttError as error:
            if connected:
                log.warning("printer %s lost its broker: %s", self.config.printer_id, error)
                raise _SessionEnded from error
            raise
        finally:
            self._client = None
            self.ready.clear()

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Take commands and publish events until either side of the link fails.

        Plain tasks awaited here rather than a task group: on Python 3.11 a task group whose
        child fails after its body has finished leaves its parent task marked as cancelling,
        which would poison every later timeout in the link loop.
        """
        name = self.config.printer_id
        receiver = asyncio.create_task(self._receive_commands(client), name=f"{name}:commands")
        publisher = asyncio.create_task(self._publish_events(client), name=f"{name}:events")
        try:
            done, _ = await asyncio.wait({receiver, publisher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            receiver.cancel()
            publisher.cancel()
            await asyncio.wait({receiver, publisher})
        for task in done:
            task.result()  # the MqttError that ended the session (or a bug)
        msg = "the session ended without an error"
        raise aiomqtt.MqttError(msg)

    async def _receive_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if message.retain:
                # The cloud never retains a command; one delivered as retained was left on the
                # topic and could be any age. The gate would likely refuse it, but it is not even
                # worth judging: judging would consume its id.
                self.stats.retained_dropped += 1
                log.warning(
                    "printer %s dropped a retained message on its commands topic",
                    self.config.printer_id,
                )
                continue
            await self._on_command(_payload_bytes(message.payload))

    async def _publish_events(self, client: aiomqtt.Client) -> None:
        """Publish the outbox in order; an event leaves it only once the broker acknowledged it."""
        topic = self.topics.events(self.config.printer_id)
        while True:
            while not self._outbox:
                self._outbox_filled.clear()
                await self._outbox_filled.wait()
            event = self._outbox[0]
            # Raises MqttError if the link fails: the event stays first in line for the next
            # session. (The broker may have it already; the cloud tolerates duplicate events.)
            await _publish(client, topic, encode(event), qos=1)
            if self._outbox and self._outbox[0] is event:
                self._outbox.popleft()

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        offline = Presence(
            printer_id=self.config.printer_id, online=False, model=self.hardware.model
        )
        with contextlib.suppress(aiomqtt.MqttError):
            await _publish(
                client,
                self.topics.presence(self.config.printer_id),
                encode(offline),
                qos=1,
                retain=True,
                within=2.0,
            )

    async def _announce(self, client: aiomqtt.Client) -> None:
        """After every (re)connect: presence, then what was kept, the whole state, a clock check."""
        presence = Presence(
            printer_id=self.config.printer_id, online=True, model=self.hardware.model
        )
        await _publish(
            client,
            self.topics.presence(self.config.printer_id),
            encode(presence),
            qos=1,
            retain=True,
        )
        now = self._clock_ms()
        self._emit(self.core.state_event(now))
        self._emit(self.core.request_time(now))
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

    def _emit(self, event: Event) -> None:
        """Queue an event for publishing; never waits for the network."""
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            self.stats.events_dropped += 1
        self._outbox.append(event)
        self._outbox_filled.set()

    async def _on_command(self, payload: bytes) -> None:
        self.stats.commands += 1
        async with self._judging():
            now = self._clock_ms()
            if self.hardware.has_plate_sensor:
                self.core.plate_reading(_plate(self.hardware.read_plate()), now)
            output = self.core.receive(payload, now)
            if output.command is None:
                self.stats.malformed += 1
                log.warning(
                    "printer %s refused an undecodable command: %s",
                    self.config.printer_id,
                    output.decision.detail,
                )
            _record_judgement(self.config.printer_id, output)
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
                _history.debug(
                    "fault_cleared", extra={"history": {"printer_id": self.config.printer_id}}
                )
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
            case ShowMessage(text=text, level=level):
                if level == "prompt":
                    prompt = Prompt(PLATE_PROMPT_ID, text, ("The plate is clear",))
                    await hardware.screen.show_prompt(prompt)
                else:
                    await hardware.screen.show_message(text, _LEVELS.get(level, MessageLevel.INFO))
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

    async def _fetch(self, action: FetchFile) -> None:
        detail = ""
        try:
            digest = await self._download(action)
        except (httpx.HTTPError, OSError, ValueError) as error:
            # An HTTP error names the URL, token and all; the detail is logged and sent on.
            detail = f"download failed: {redact(str(error))}"
        else:
            if digest != action.sha256:
                detail = f"sha256 mismatch: got {digest[:12]}…, expected {action.sha256[:12]}…"
                with contextlib.suppress(FileNotFoundError):
                    await self.hardware.storage.delete(action.name)
        async with self._judging():
            now = self._clock_ms()
            if detail:
                log.warning(
                    "printer %s: stage of %s failed: %s",
                    self.config.printer_id,
                    action.job_id,
                    detail,
                )
                await self._apply(self.core.stage_failed(action.job_id, detail, now))
            else:
                await self._apply(self.core.staged(action.job_id, action.sha256, now))

    async def _download(self, action: FetchFile) -> str:
        hasher = hashlib.sha256()
        client = self._http or httpx.AsyncClient(timeout=30)
        try:
            async with client.stream("GET", action.url) as response:
                response.raise_for_status()

                async def chunks() -> AsyncIterator[bytes]:
                    received = 0
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                        if received > MAX_FILE_BYTES or received > action.size:
                            msg = f"file is larger than the announced {action.size} bytes"
                            raise ValueError(msg)
                        hasher.update(chunk)
                        yield chunk

                await self.hardware.storage.write(action.name, chunks())
        finally:
            if self._http is None:
                await client.aclose()
        return hasher.hexdigest()

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

    async def _thermal_loop(self) -> None:
        """Refresh the watchdog, read both heaters and run the checks, every `READING_PERIOD`.

        This loop never waits for the lock or the network: a fault cuts the heaters here and
        now, and is handed to `_fault_loop` to be latched, journaled and announced.
        """
        clock = self.hardware.clock
        next_reading = clock.now()
        while True:
            await self.hardware.refresh_watchdog()
            readings = [self.hardware.read_heater(heater) for heater in HeaterId]
            faults = [
                fault for reading in readings if (fault := self.guard.observe(reading)) is not None
            ]
            faults.extend(self.guard.tick(clock.now()))
            latched = self.guard.latched is not None or self.core.state.fault is not None
            if faults or (latched and any(reading.target > 0 for reading in readings)):
                # Cut power first. While a fault is latched nothing may heat, whoever set it.
                await self.hardware.heaters_off()
            if faults:
                self._pending_faults.extend(faults)
                self._faults_found.set()
            # A fixed rate, so the guard sees readings `READING_PERIOD` apart, as its detection
            # bounds assume, however long each round takes. After a stall, a new grid: readings
            # in a burst to catch up would count as consecutive samples of one instant.
            next_reading += READING_PERIOD
            now = clock.now()
            if next_reading < now:
                next_reading = now + READING_PERIOD
            await clock.sleep(next_reading - now)

    async def _fault_loop(self) -> None:
        while True:
            await self._faults_found.wait()
            async with self._lock:
                await self._latch_pending_faults()

    async def _latch_pending_faults(self) -> None:
        """Latch the faults the thermal loop found, in order. Call with ``self._lock`` held."""
        self._faults_found.clear()
        while self._pending_faults:
            fault = self._pending_faults.popleft()
            self.stats.faults.append(fault.message)
            log.error("printer %s: %s", self.config.printer_id, fault.message)
            state = self.core.state
            if state.fault is None and state.status in _RUNNING:
                self._stopped_by_fault = state.job_id
            _history.debug(
                "thermal_fault",
                extra={"history": {"printer_id": self.config.printer_id, "fault": fault.message}},
            )
            await self._apply(self.core.thermal_fault(fault.message, self._clock_ms()))

    # -- the other loops ---------------------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.telemetry_period_s)
            if self.hardware.has_plate_sensor:
                # Read each period, not only when a command comes: otherwise a plate cleared by
                # hand goes on looking occupied, and a job waiting for it never starts.
                self.core.plate_reading(_plate(self.hardware.read_plate()), self._clock_ms())
            client = self._client
            if client is None:
                # Not queued for later (S9 in spirit): kept in a bounded buffer, summarised
                # in one alert when the broker is back.
                self.offline_telemetry.add(self.telemetry(), time.monotonic())
                continue
            if time.monotonic() >= self._reports_due and self.core.journal.unacknowledged_reports():
                self._send_reports()
            with contextlib.suppress(aiomqtt.MqttError):
                await _publish(
                    client,
                    self.topics.telemetry(self.config.printer_id),
                    encode(self.telemetry()),
                    qos=0,
                )
                self.stats.telemetry_sent += 1

    async def _time_sync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.time_sync_period_s)
            # Only while connected: a request queued through an outage would time nothing.
            if self._client is not None:
                self._emit(self.core.request_time(self._clock_ms()))

    async def _lan_loop(self) -> None:
        # Imported here: fleets of simulated printers run without the LAN API, and its web
        # stack costs memory they should not pay.
        from printfleet.agent.lan import serve_lan  # noqa: PLC0415

        await serve_lan(self)

    # -- local actions: the LAN API and the printer's screen ----------------------------------

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
            if self.hardware.has_plate_sensor:
                self.core.plate_reading(_plate(self.hardware.read_plate()), now)
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

    def telemetry(self) -> Telemetry:
        """The current telemetry report."""
        now = self._clock_ms()
        state = self.core.state
        hotend = self.hardware.read_heater(HeaterId.HOTEND)
        bed = self.hardware.read_heater(HeaterId.BED)
        progress = None
        handle = self.hardware.current_print()
        if handle is not None and state.status in _RUNNING:
            snapshot = handle.progress()
            percent = max(0, min(100, int(snapshot.percent)))
            # A print never goes backwards, though a printer's estimate may (one that counts
            # bytes read until the file's own progress lines start, say): report the furthest.
            job, floor = self._progress_floor
            if job == state.job_id:
                percent = max(percent, floor)
            self._progress_floor = (state.job_id, percent)
            progress = ProgressTelemetry(
                percent=percent,
                layer=max(0, snapshot.layer),
                total_layers=snapshot.total_layers or 0,
                time_left_s=int(snapshot.time_left or 0),
            )
        self._telemetry_seq += 1
        return Telemetry(
            printer_id=self.config.printer_id,
            seq=self._telemetry_seq,
            sent_at=self.core.cloud_now(now),
            status=state.status,
            job_id=state.job_id,
            plate=state.plate_status(),
            fault=state.fault,
            hotend=_heater(hotend),
            bed=_heater(bed),
            progress=progress,
        )


# aiomqtt bounds its waits with `asyncio.wait_for`, which on Python 3.11 can swallow a
# cancellation that arrives just as the broker answers: the task then runs on, told to stop,
# and whoever waits for it (a shutting-down agent) waits for ever. So the client's own timeout
# is off, and every wait on the broker is bounded here by `asyncio.timeout` instead.


@contextlib.asynccontextmanager
async def _link_timeout(seconds: float = PUBLISH_TIMEOUT_S) -> AsyncIterator[None]:
    """Bound a broker round trip; running out of time is a link failure (MqttError)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        msg = f"no answer from the broker within {seconds:g} s"
        raise aiomqtt.MqttError(msg) from None


async def _publish(
    client: aiomqtt.Client,
    topic: str,
    payload: bytes,
    *,
    qos: int,
    retain: bool = False,
    within: float = PUBLISH_TIMEOUT_S,
) -> None:
    async with _link_timeout(within):
        await client.publish(topic, payload, qos=qos, retain=retain, timeout=math.inf)


def _record_judgement(printer_id: str, output: Output) -> None:
    """Tell the chaos history what the gate made of a command, if it listens."""
    if not _history.isEnabledFor(logging.DEBUG):
        return
    command, decision = output.command, output.decision
    fields = {
        "printer_id": printer_id,
        "command_id": None if command is None else command.id,
        "type": str(getattr(command, "type", "unknown")),
        "job_id": None if command is None else command.job_id,
        "issued_at": None if command is None else command.issued_at,
        "not_after": None if command is None else command.not_after,
        "accepted": decision.accepted,
        "reason": None if decision.reason is None else decision.reason.value,
    }
    _history.debug("command_received", extra={"history": fields})


def _heater(reading: HeaterReading) -> HeaterTelemetry:
    return HeaterTelemetry(
        temp_dc=round(reading.temperature * 10), target_dc=round(reading.target * 10)
    )


def _plate(reading: object) -> PlateReading:
    return PlateReading(str(getattr(reading, "value", reading)))


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b""
