"""A simulated printer: the real :class:`~printfleet.protocol.printer.PrinterCore` plus a little
physics (a plate, a print that takes time and heats up first, a heater that can fault, a power
switch, the spools and nozzle a person loads) and a clock with its own offset and drift.
"""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from printfleet.chaos.sim_history import HeatUp, History, PhysicalStart
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
from printfleet.protocol.messages import (
    CommandBase,
    Event,
    HeaterTelemetry,
    JobOutcome,
    MaterialSlot,
    PrinterStatus,
    Telemetry,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.signing import CommandVerifier

HEAT_UP_MS = 4_000
"""How long a print heats up before it is at temperature."""
PRINT_TEMP_DC, ROOM_TEMP_DC = 2_200, 250


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
        self.materials: tuple[str, ...] = ()
        """The spools loaded, slot by slot (physical truth)."""
        self.nozzle_um: int | None = None
        self.loadouts: list[tuple[int, tuple[str, ...], int | None]] = [(0, (), None)]
        """Every loadout the printer had, from when: what a report of that time said."""
        self.heat_up: HeatUp | None = None
        self._telemetry_seq = 0
        self.core = self._fresh_core(has_history=False)

    @property
    def has_sensor(self) -> bool:
        """x1-like printers have a plate sensor; p1-like ones do not."""
        return self.model == "x1"

    def _fresh_core(self, *, has_history: bool) -> PrinterCore:
        journal = Journal.replay(self.stored_records) if has_history else Journal()
        state = PrinterState(
            printer_id=self.printer_id,
            has_plate_sensor=self.has_sensor,
            materials=self._slots(),
            nozzle_um=self.nozzle_um,
        )
        return PrinterCore(
            state,
            verifier=self._verifier,
            new_id=self._new_id,
            journal=journal,
            gate=self._gate,
        )

    def _slots(self) -> tuple[MaterialSlot, ...]:
        return tuple(
            MaterialSlot(slot=index + 1, material=material)
            for index, material in enumerate(self.materials)
        )

    def load(
        self, now: int, materials: tuple[str, ...], nozzle_um: int | None, history: History
    ) -> list[Event]:
        """A person loads these spools and fits this nozzle (at the printer's screen): the
        printer reports its new loadout at once if it is on."""
        self.materials, self.nozzle_um = materials, nozzle_um
        self.loadouts.append((now, materials, nozzle_um))
        history.loadout_changes += 1
        if not self.powered:
            return []
        self.core.state = replace(self.core.state, materials=self._slots(), nozzle_um=nozzle_um)
        return [self.state_event(now)]

    def heating(self, now: int) -> bool:
        """Heating up for a print now (physical truth)."""
        return self.heat_up is not None and self.heat_up.at(now)

    def _stop_heating(self, now: int) -> None:
        if self.heat_up is not None and self.heat_up.until > now:
            self.heat_up.until = now
        self.heat_up = None

    def telemetry(self, now: int) -> Telemetry:
        """A telemetry report: the heaters below their target while the print heats up."""
        local = self.clock.local(now)
        self._sense(local)
        state = self.core.state
        printing = state.status is PrinterStatus.PRINTING
        target = PRINT_TEMP_DC if printing and not self.fault else 0
        temp = ROOM_TEMP_DC if self.heating(now) or not printing else target
        self._telemetry_seq += 1
        return Telemetry(
            printer_id=self.printer_id,
            seq=self._telemetry_seq,
            sent_at=self.core.cloud_now(local),
            status=state.status,
            job_id=state.job_id,
            plate=state.plate_status(),
            fault=state.fault,
            hotend=HeaterTelemetry(temp_dc=temp, target_dc=target),
            bed=HeaterTelemetry(temp_dc=min(temp, 600), target_dc=min(target, 600)),
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
                    self.heat_up = HeatUp(
                        self.printer_id,
                        job_id,
                        command.id if command is not None else None,
                        now,
                        now + HEAT_UP_MS,
                    )
                    history.heat_ups.append(self.heat_up)
                case CancelPrint():
                    if self.printing_job is not None:
                        self.print_ends_at = now
                        self._stop_heating(now)
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
            self._stop_heating(now)
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
        self._stop_heating(now)
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
        self.power_off(now)
        return self.power_on(now, history)

    def power_off(self, now: int) -> None:
        """The power goes: the running print stops where it is (its part stays on the plate),
        and the printer hears and says nothing until it is switched on again."""
        self._stop_heating(now)
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
