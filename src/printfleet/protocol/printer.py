"""``PrinterCore``: the printer's whole protocol side, sans-IO, as one object an agent drives.

Bytes and clock readings go in; decisions come out as journal records to persist, hardware
actions to perform and events to publish, in that order. The agent, the simulator and the
deterministic chaos simulation all run this same object.
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from printfleet.protocol import gate
from printfleet.protocol.clock import ClockEstimate, ClockOffsetEstimator
from printfleet.protocol.gate import (
    Emit,
    Gate,
    GateDecision,
    GateSettings,
    PlateReading,
    PrinterState,
    SafetyGate,
)
from printfleet.protocol.journal import Journal, JournalRecord, RecordKind
from printfleet.protocol.messages import (
    Command,
    CommandBase,
    DecodeError,
    Event,
    JobOutcome,
    JournalQueryCommand,
    JournalReportBody,
    LocalJobAckCommand,
    LocalJobBody,
    MaterialSlot,
    PrinterStateBody,
    PrinterStatus,
    StartSource,
    TimeReplyCommand,
    TimeRequestBody,
    decode_command,
    make_event,
)
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandVerifier

_MAX_PENDING_TIME_REQUESTS = 4


@dataclass(frozen=True, slots=True)
class Output:
    """What the agent must do, in order: persist ``records`` durably, perform ``actions``,
    publish ``events``."""

    decision: GateDecision
    events: tuple[Event, ...]
    command: CommandBase | None = None
    """The decoded command this output answers, if any."""

    @property
    def records(self) -> tuple[JournalRecord, ...]:
        """Journal records to persist before anything else."""
        return self.decision.records

    @property
    def actions(self) -> tuple[gate.Action, ...]:
        """Hardware effects, in order."""
        return self.decision.actions


class PrinterCore:
    """One printer's protocol state machine.

    ``verifier`` holds the pinned cloud key; without one no command verifies (a printer that was
    never provisioned obeys nobody). ``new_id`` makes message ids (time-ordered UUIDs in
    production, seeded ones in simulations); every ``now_local`` is the printer's monotonic
    clock in milliseconds. ``gate`` decides every command and local start: the
    :class:`~printfleet.protocol.gate.SafetyGate` unless another is handed in (only the chaos
    harness does, to build a printer that proves its checker).
    """

    def __init__(
        self,
        state: PrinterState,
        *,
        verifier: CommandVerifier | None,
        new_id: Callable[[], str],
        journal: Journal | None = None,
        settings: GateSettings | None = None,
        estimator: ClockOffsetEstimator | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.journal = journal if journal is not None else Journal()
        # What the journal remembers outlives a restart: a latched fault and the plate setting.
        if self.journal.fault is not None:
            state = replace(state, fault=self.journal.fault, status=PrinterStatus.ERROR)
        if self.journal.plate_check is not None:
            state = replace(state, plate_check=self.journal.plate_check)
        self.state = state
        self.settings = settings if settings is not None else GateSettings()
        self.gate: Gate = gate if gate is not None else SafetyGate()
        self.estimator = estimator if estimator is not None else ClockOffsetEstimator()
        self._verifier = verifier
        self._new_id = new_id
        self._time_requests: OrderedDict[str, int] = OrderedDict()
        # When each running local print began (local ms), for its report's duration.
        self._local_started: dict[str, int] = {}

    # -- clock ------------------------------------------------------------------------------

    def clock(self, now_local: int) -> ClockEstimate | None:
        """The current offset estimate, or None before the first usable round trip."""
        return self.estimator.estimate(now_local)

    def clock_synced(self, now_local: int) -> bool:
        """Whether deadlines can be judged now."""
        estimate = self.clock(now_local)
        return estimate is not None and estimate.bound <= self.settings.max_clock_bound_ms

    def cloud_now(self, now_local: int) -> int | None:
        """The best estimate of cloud time, if synced."""
        estimate = self.clock(now_local)
        if estimate is None or estimate.bound > self.settings.max_clock_bound_ms:
            return None
        return estimate.cloud_time(now_local).midpoint

    def request_time(self, now_local: int) -> Event:
        """A time request to publish; the signed reply feeds the offset estimator."""
        nonce = self._new_id()
        self._time_requests[nonce] = now_local
        while len(self._time_requests) > _MAX_PENDING_TIME_REQUESTS:
            self._time_requests.popitem(last=False)
        return self._event(Emit(TimeRequestBody(nonce=nonce, sent_local=now_local)), now_local)

    # -- inputs ---------------------------------------------------------------------------------

    def receive(self, payload: bytes, now_local: int) -> Output:
        """Handle one command payload from the broker, whatever its bytes."""
        try:
            command = decode_command(payload)
        except DecodeError as error:
            refusal = gate.Refusal(error.reason, error.detail)
            return self._finish(gate.refuse(self.state, refusal, command_type="unknown"), now_local)
        return replace(self._receive(command, now_local), command=command)

    def _receive(self, command: Command, now_local: int) -> Output:
        if isinstance(command, TimeReplyCommand | JournalQueryCommand | LocalJobAckCommand):
            # Answered here, not by the gate, but authenticated and addressed all the same.
            refusal = self.gate.check_signature(verified=self._verified(command))
            if refusal is None and command.printer_id != self.state.printer_id:
                refusal = gate.Refusal(Reason.WRONG_PRINTER, command.printer_id)
            if refusal is not None:
                decision = gate.refuse(
                    self.state, refusal, command_type=command.type, command_id=command.id
                )
                return self._finish(decision, now_local)
            if isinstance(command, TimeReplyCommand):
                return self._time_reply(command, now_local)
            if isinstance(command, LocalJobAckCommand):
                return self._local_job_ack(command, now_local)
            return self._journal_query(command, now_local)
        decision = self.gate.evaluate(
            self.state,
            self.journal,
            command,
            verified=self._verified(command),
            now_local=now_local,
            clock=self.clock(now_local),
            settings=self.settings,
        )
        return self._finish(decision, now_local)

    def recover(self, now_local: int) -> Output:
        """After a restart: close every print the journal says started and never ended.

        The print is gone with the power; reporting it failed keeps the cloud from waiting on it
        forever (S7), and its journal entry keeps it from ever starting again (S3).
        """
        interrupted = self.journal.interrupted()
        if not interrupted:
            return self._finish(gate.accept(self.state), now_local)
        records: list[JournalRecord] = []
        events: list[Emit] = []
        state = self.state
        for job_id in interrupted:
            ended = self._reported(
                gate.record_print_ended(
                    replace(state, job_id=job_id, status=PrinterStatus.PRINTING),
                    JobOutcome.FAILED,
                    detail="the printer restarted during the print",
                    now_local=now_local,
                ),
                job_id,
                JobOutcome.FAILED,
                "the printer restarted during the print",
                now_local,
            )
            records.extend(ended.records)
            events.extend(ended.events)
            state = ended.state
        decision = gate.accept(state, records=tuple(records), events=tuple(events))
        return self._finish(decision, now_local)

    def start_locally(self, job_id: str, name: str, source: StartSource, now_local: int) -> Output:
        """A person at the printer (screen or LAN) starts a stored file."""
        decision = self.gate.start_locally(
            self.state,
            self.journal,
            job_id=job_id,
            name=name,
            source=source,
            now_local=now_local,
            settings=self.settings,
        )
        if decision.accepted:
            self._local_started[job_id] = now_local
        return self._finish(decision, now_local)

    def pause_locally(self, now_local: int) -> Output:
        """A person at the printer pauses the running print."""
        return self._finish(gate.pause_locally(self.state), now_local)

    def resume_locally(self, now_local: int) -> Output:
        """A person at the printer resumes the paused print (S6 applies)."""
        return self._finish(gate.resume_locally(self.state), now_local)

    def cancel_locally(self, now_local: int) -> Output:
        """A person at the printer cancels the running print."""
        return self._finish(gate.cancel_locally(self.state), now_local)

    def local_job_reports(self, now_local: int) -> list[Event]:
        """The reports of local jobs the cloud has not acknowledged: send them again."""
        return [
            self._event(Emit(report, job_id), now_local)
            for job_id, report in self.journal.unacknowledged_reports().items()
        ]

    def confirm_plate_locally(self, by: str, now_local: int) -> Output:
        """A person at the printer confirmed the plate is clear."""
        return self._finish(
            gate.confirm_plate_locally(self.state, by=by, now_local=now_local), now_local
        )

    def plate_reading(self, reading: PlateReading, now_local: int) -> None:
        """A fresh plate sensor reading (call right before judging a start)."""
        self.state = gate.record_plate_reading(self.state, reading, now_local=now_local)

    def staged(self, job_id: str, sha256: str, now_local: int) -> Output:
        """A fetched file checked out."""
        return self._finish(gate.record_staged(self.state, job_id, sha256), now_local)

    def stage_failed(self, job_id: str, detail: str, now_local: int) -> Output:
        """A fetch failed or its checksum did not match."""
        refusal = gate.Refusal(Reason.STAGE_FAILED, detail)
        decision = gate.refuse(self.state, refusal, command_type="stage", job_id=job_id)
        return self._finish(decision, now_local)

    def print_ended(self, outcome: JobOutcome, detail: str, now_local: int) -> Output:
        """The hardware reports the running print ended."""
        job_id = self.state.job_id
        decision = gate.record_print_ended(self.state, outcome, detail=detail, now_local=now_local)
        if job_id is not None:
            decision = self._reported(decision, job_id, outcome, detail, now_local)
        return self._finish(decision, now_local)

    def _reported(
        self, decision: GateDecision, job_id: str, outcome: JobOutcome, detail: str, now_local: int
    ) -> GateDecision:
        """``decision`` plus the report of a local job's end, journaled until acknowledged."""
        local = self.journal.local_start(job_id)
        if local is None:
            return decision
        source, name = local
        started = self._local_started.pop(job_id, None)
        report = LocalJobBody(
            source=source,
            name=name,
            outcome=outcome,
            detail=detail[:500],
            ended_at=self.cloud_now(now_local),
            duration_s=None if started is None else max(0, now_local - started) // 1000,
        )
        record = JournalRecord(kind=RecordKind.LOCAL_JOB_REPORT, job_id=job_id, local_job=report)
        return replace(
            decision,
            records=(*decision.records, record),
            events=(*decision.events, Emit(report, job_id)),
        )

    def thermal_fault(self, message: str, now_local: int) -> Output:
        """The agent's thermal protection tripped."""
        return self._finish(gate.record_thermal_fault(self.state, message), now_local)

    def clear_fault_locally(self, by: str, now_local: int) -> Output:
        """A person at the printer cleared the latched fault."""
        return self._finish(gate.clear_fault(self.state, by), now_local)

    def set_cloud_enabled(self, *, enabled: bool, now_local: int) -> Output:
        """Switch between cloud + LAN and LAN-only operation (a local decision)."""
        decision = gate.accept(replace(self.state, cloud_enabled=enabled))
        return self._finish(decision, now_local)

    def loadout_reported(
        self, materials: tuple[MaterialSlot, ...], nozzle_um: int | None, now_local: int
    ) -> Output:
        """The hardware says what is loaded now (a person changed it at the screen, or a
        ``set_material``/``set_nozzle`` took effect); the state goes out if it changed."""
        state = replace(self.state, materials=materials, nozzle_um=nozzle_um)
        return self._finish(gate.accept(state), now_local)

    def state_event(self, now_local: int) -> Event:
        """The full state announcement (after every reconnect and every change)."""
        state = self.state
        body = PrinterStateBody(
            status=state.status,
            job_id=state.job_id,
            plate=state.plate_status(),
            has_plate_sensor=state.has_plate_sensor,
            plate_check=state.plate_check,
            fault=state.fault,
            clock_synced=self.clock_synced(now_local),
            staged=tuple(state.staged)[-64:],
            cloud_enabled=state.cloud_enabled,
            materials=state.materials,
            nozzle_um=state.nozzle_um,
            simulated=state.simulated,
        )
        return self._event(Emit(body, state.job_id), now_local)

    # -- internals ------------------------------------------------------------------------------

    def _verified(self, command: CommandBase) -> bool:
        return self._verifier is not None and self._verifier.verify(command)

    def _finish(self, decision: GateDecision, now_local: int) -> Output:
        changed = decision.state != self.state
        self.state = decision.state
        for record in decision.records:
            self.journal.apply(record)
        events = [self._event(emit, now_local) for emit in decision.events]
        if changed or decision.announce:
            events.append(self.state_event(now_local))
        return Output(decision, tuple(events))

    def _event(self, emit: Emit, now_local: int) -> Event:
        return make_event(
            emit.body,
            event_id=self._new_id(),
            printer_id=self.state.printer_id,
            job_id=emit.job_id,
            sent_at=self.cloud_now(now_local),
        )

    def _time_reply(self, command: TimeReplyCommand, now_local: int) -> Output:
        sent_local = self._time_requests.get(command.body.nonce)
        if sent_local is None or sent_local != command.body.request_sent_local:
            # An unsolicited or replayed reply could drag the clock; only our own nonce counts.
            refusal = gate.Refusal(Reason.DUPLICATE, "no time request outstanding with that nonce")
        else:
            del self._time_requests[command.body.nonce]
            if self.estimator.add_round_trip(sent_local, command.issued_at, now_local):
                return self._finish(gate.accept(self.state), now_local)
            refusal = gate.Refusal(Reason.STALE, "round trip too slow to bound the clock")
        decision = gate.refuse(
            self.state, refusal, command_type="time_reply", command_id=command.id
        )
        return self._finish(decision, now_local)

    def _local_job_ack(self, command: LocalJobAckCommand, now_local: int) -> Output:
        pending = self.journal.unacknowledged_reports()
        records = tuple(
            JournalRecord(kind=RecordKind.LOCAL_JOB_ACKED, job_id=job_id)
            for job_id in dict.fromkeys(command.body.job_ids)
            if job_id in pending
        )
        return self._finish(gate.accept(self.state, records=records), now_local)

    def _journal_query(self, command: JournalQueryCommand, now_local: int) -> Output:
        jobs = {job_id: self.journal.job_status(job_id) for job_id in command.body.job_ids}
        report = Emit(JournalReportBody(query_id=command.id, jobs=jobs))
        return self._finish(gate.accept(self.state, events=(report,)), now_local)
