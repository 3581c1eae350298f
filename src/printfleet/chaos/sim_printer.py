"""A simulated printer: the real :class:`~printfleet.protocol.printer.PrinterCore` plus a little
physics (a plate, a print that takes time, a heater that can fault, a power switch) and a clock
with its own offset and drift.
"""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from printfleet.chaos.sim_history import History, PhysicalStart
from printfleet.protocol.gate import (
    CancelPrint,
    FetchFile,
    Gate,
    HeatersOff,
    PlateReading,
    PrinterState,
    StartPrint,
)
from printfleet.protocol.journal import Journal, JournalRecord
from printfleet.protocol.messages import CommandBase, Event, JobOutcome
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandVerifier


def uuid_factory(rng: random.Random) -> Callable[[], str]:
    # Seeded ids keep a failing schedule exactly replayable; nothing here is secret.
    return lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------------------------------------
# A printer: the real PrinterCore plus a little physics.


@dataclass(frozen=True, slots=True)
class PrinterClock:
    """``local = true * (1 + drift_ppm/1e6) + offset``: offset and drift, like a real crystal."""

    offset_ms: int
    drift_ppm: int

    def local(self, true_ms: int) -> int:
        """The printer's monotonic reading at true cloud time ``true_ms``."""
        return true_ms + (true_ms * self.drift_ppm) // 1_000_000 + self.offset_ms


class SimPrinter:
    """A printer whose protocol side is the real core and whose body is a few booleans."""

    def __init__(
        self,
        printer_id: str,
        model: str,
        *,
        verifier: CommandVerifier,
        clock: PrinterClock,
        gate: Gate,
        rng: random.Random,
        print_ms: int,
    ) -> None:
        self.printer_id = printer_id
        self.model = model
        self.clock = clock
        self.print_ms = print_ms
        self._verifier = verifier
        self._gate = gate
        self._new_id = uuid_factory(rng)
        self.stored_records: list[JournalRecord] = []
        # Physical truth, independent of what the core believes.
        self.plate_occupied = False
        self.confirmed_by_person = False
        """Someone said the plate is clear since the last start (the checker's S5 witness)."""
        self.printing_job: str | None = None
        self.print_ends_at: int | None = None
        self.fault = False
        self.powered = True
        self.core = self._fresh_core(has_history=False)

    @property
    def has_sensor(self) -> bool:
        """x1-like printers have a plate sensor; p1-like ones do not."""
        return self.model == "x1"

    def _fresh_core(self, *, has_history: bool) -> PrinterCore:
        journal = Journal.replay(self.stored_records) if has_history else Journal()
        state = PrinterState(printer_id=self.printer_id, has_plate_sensor=self.has_sensor)
        return PrinterCore(
            state,
            verifier=self._verifier,
            new_id=self._new_id,
            journal=journal,
            gate=self._gate,
        )

    def _sense(self, local: int) -> None:
        if self.has_sensor:
            reading = PlateReading.OCCUPIED if self.plate_occupied else PlateReading.CLEAR
            self.core.plate_reading(reading, local)

    def _apply(
        self, output: Output, now: int, history: History, command: CommandBase | None
    ) -> list[Event]:
        # Write-ahead: the journal is stored before anything physical happens.
        self.stored_records.extend(output.records)
        for action in output.actions:
            match action:
                case StartPrint(job_id=job_id):
                    history.starts.append(
                        PhysicalStart(
                            at=now,
                            printer_id=self.printer_id,
                            job_id=job_id,
                            source="cloud" if command is not None else "screen",
                            command_id=command.id if command is not None else None,
                            issued_at=command.issued_at if command is not None else None,
                            not_after=command.not_after if command is not None else None,
                            plate_occupied=self.plate_occupied,
                            printer_busy=self.printing_job is not None,
                            fault_latched=self.fault,
                            plate_check=self.core.state.plate_check,
                            link_verified_at_issue=(
                                history.commands_issued[command.id][2]
                                if command is not None and command.id in history.commands_issued
                                else None
                            ),
                            has_plate_sensor=self.has_sensor,
                            plate_confirmed=self.confirmed_by_person,
                        )
                    )
                    self.confirmed_by_person = False
                    self.printing_job = job_id
                    self.print_ends_at = now + self.print_ms
                    self.plate_occupied = True
                case CancelPrint():
                    if self.printing_job is not None:
                        self.print_ends_at = now
                case HeatersOff():
                    pass
                case FetchFile(job_id=job_id, sha256=sha256):
                    staged = self.core.staged(job_id, sha256, self.clock.local(now))
                    return [*output.events, *staged.events]
                case _:
                    pass
        return list(output.events)

    def receive(self, payload: bytes, now: int, history: History) -> list[Event]:
        """A command payload arrives."""
        local = self.clock.local(now)
        self._sense(local)
        output = self.core.receive(payload, local)
        return self._apply(output, now, history, output.command)

    def tick(self, now: int, history: History) -> list[Event]:
        """Let time pass: prints end; the printer reports its state."""
        local = self.clock.local(now)
        events: list[Event] = []
        if (
            self.printing_job is not None
            and self.print_ends_at is not None
            and now >= self.print_ends_at
        ):
            outcome = JobOutcome.FAILED if self.fault else JobOutcome.COMPLETED
            self.printing_job = None
            self.print_ends_at = None
            events.extend(
                self._apply(self.core.print_ended(outcome, "", local), now, history, None)
            )
        self._sense(local)
        return events

    def request_time(self, now: int) -> Event:
        """A time request for the cloud."""
        return self.core.request_time(self.clock.local(now))

    def state_event(self, now: int) -> Event:
        """A full state report."""
        local = self.clock.local(now)
        self._sense(local)
        return self.core.state_event(local)

    def person_clears_plate(self, now: int, *, confirm_locally: bool) -> list[Event]:
        """Someone removes the print; on a sensorless printer they may confirm at the screen."""
        if self.printing_job is not None:
            return []
        self.plate_occupied = False
        if not self.powered:
            return []
        local = self.clock.local(now)
        self._sense(local)
        if confirm_locally and not self.has_sensor:
            self.confirmed_by_person = True
            return list(self.core.confirm_plate_locally("person", local).events)
        return [self.core.state_event(local)]

    def thermal_fault(self, now: int, history: History) -> list[Event]:
        """The heater misbehaves; the agent's thermal protection latches a fault."""
        self.fault = True
        output = self.core.thermal_fault(
            "Hotend not heating at expected rate", self.clock.local(now)
        )
        return self._apply(output, now, history, None)

    def clear_fault(self, now: int) -> list[Event]:
        """A person fixed the heater and cleared the fault at the printer."""
        self.fault = False
        return list(self.core.clear_fault_locally("person", self.clock.local(now)).events)

    def restart(self, now: int, history: History) -> list[Event]:
        """Power cycle: memory is gone, the journal file survives; a running print is lost."""
        self.power_off()
        return self.power_on(now, history)

    def power_off(self) -> None:
        """The power goes: the running print stops where it is (its part stays on the plate),
        and the printer hears and says nothing until it is switched on again."""
        self.printing_job = None
        self.print_ends_at = None
        self.powered = False

    def power_on(self, now: int, history: History) -> list[Event]:
        """Boot from the journal file: settings and every job acted on are remembered."""
        del history  # recovery starts nothing
        self.powered = True
        self.core = self._fresh_core(has_history=True)
        output = self.core.recover(self.clock.local(now))
        self.stored_records.extend(output.records)
        return [*output.events, self.state_event(now)]
