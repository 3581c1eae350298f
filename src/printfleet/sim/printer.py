"""SimulatedPrinter: the Hardware port over a thermal board, G-code runner, plate, screen, SD card.

Time is evaluated lazily: nothing ticks. Every read and command first advances the pure thermal
board to the clock's now, so results do not depend on any tick rate, and an idle printer costs no
CPU at all — a thousand of them in one process cost only their memory. The one task a printer runs
is its current print's, inside the task group that `async with printer` opens ("power on").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Self

from printfleet.agent.hardware import (
    WATCHDOG_TIMEOUT_S,
    EjectNotSupportedError,
    HardwareError,
    HeaterId,
    HeaterReading,
    Loadout,
    PlateReading,
    PrinterBusyError,
    PrintOutcomeKind,
)
from printfleet.agent.runtime import PLATE_PROMPT_ID
from printfleet.sim.clock import SimClock
from printfleet.sim.gcode import SimulatedPrint
from printfleet.sim.materials import SLOTS_OF_MODEL, SimLoadout, default_loadout
from printfleet.sim.plate import Plate, PlateSensor
from printfleet.sim.screen import SimScreen
from printfleet.sim.storage import SimStorage
from printfleet.sim.thermal import BED, HOTEND, Board, HeaterFault, HeaterModel, HeaterParams

__all__ = ["EJECT_S", "MODELS", "PrinterModel", "SimulatedPrinter"]

log = logging.getLogger(__name__)

EJECT_S = 20.0
"""Simulated seconds an eject routine takes (cooling the plate, pushing the part off)."""
_PROMPT_WAIT_S = 5.0
"""Real seconds the attendant waits for the agent's plate question after a print's end."""


@dataclass(frozen=True, slots=True)
class PrinterModel:
    """What distinguishes one printer model from another in the simulation."""

    name: str
    has_plate_sensor: bool
    material_slots: int = 1
    """Filament slots: 4 for an AMS-like material system, 1 for a single spool."""
    hotend: HeaterParams = HOTEND
    bed: HeaterParams = BED


MODELS: Mapping[str, PrinterModel] = MappingProxyType(
    {
        # An X1-like printer checks its plate with a sensor (Bambu's LIDAR).
        # It also has a 4-slot material system (AMS-like).
        "x1": PrinterModel("x1", has_plate_sensor=True, material_slots=SLOTS_OF_MODEL["x1"]),
        # A P1-like printer has none: the agent must ask a person to confirm the plate is clear.
        # It takes a single spool.
        "p1": PrinterModel("p1", has_plate_sensor=False, material_slots=SLOTS_OF_MODEL["p1"]),
    }
)


class SimulatedPrinter:
    """A simulated printer implementing the agent's `Hardware` port, plus hooks for tests.

    `model` is a key of `MODELS` or a `PrinterModel`. Pass either `time_scale` (hardware seconds
    per real second; a new `SimClock`) or a `clock` shared by many printers. `seed` fixes the plate
    sensor's error draws. `watchdog_timeout=None` disables the board watchdog, for tests that run
    prints with no agent to refresh it.

    Beyond the port: `inject_fault`/`clear_fault`, `fail_fan`/`repair_fan`, `remove_print` (a
    person or robot clearing the plate), `screen.answer` (a person at the screen), and the truth
    behind readings: `body_temperature`, `plate`, `board`, `watchdog_tripped`.

    `attendant_after_s` (hardware seconds; None: nobody) puts a person on the floor who, that
    long after each print ends — completed, failed, cancelled or aborted — takes the print off
    and, on a printer without a plate sensor, confirms the plate on the screen. Without one a
    demo or `printfleet sim` farm stops after the first print on each printer, as a real farm
    whose plates nobody clears would.

    `loadout` is what is loaded at power-on (default: PLA in slot 1 and a 0.4 mm nozzle); a
    person changes it at the screen (`screen.load_material`, `screen.fit_nozzle`), the cloud
    through the agent (`set_material`, `set_nozzle`).

    `eject_s` (hardware seconds; None: no mechanism) gives the printer an eject routine, as on
    auto-eject printers, plate swappers and belts: `eject_print` takes that long and takes every
    print off the plate, unless `jam_ejector` made it fail (`repair_ejector` undoes that).
    """

    __slots__ = (
        "_attendant_after_s",
        "_attendants",
        "_board",
        "_clock",
        "_eject_jammed",
        "_eject_s",
        "_loadout",
        "_model",
        "_name",
        "_plate",
        "_print",
        "_print_started",
        "_screen",
        "_storage",
        "_tasks",
        "power_switch",
    )

    def __init__(
        self,
        model: str | PrinterModel,
        *,
        storage_dir: Path,
        time_scale: float | None = None,
        clock: SimClock | None = None,
        seed: int = 0,
        plate_sensor: PlateSensor | None = None,
        watchdog_timeout: float | None = WATCHDOG_TIMEOUT_S,
        name: str | None = None,
        attendant_after_s: float | None = None,
        loadout: Loadout | None = None,
        eject_s: float | None = None,
    ) -> None:
        if attendant_after_s is not None and not attendant_after_s >= 0.0:
            raise ValueError("attendant_after_s must be zero or more (None: no attendant)")
        if eject_s is not None and not eject_s > 0.0:
            # A routine that takes no time would confirm the plate in the very millisecond the
            # print ended, which no gate may take for a confirmation made after it.
            raise ValueError("eject_s must be more than zero (None: no eject mechanism)")
        if isinstance(model, PrinterModel):
            spec = model
        elif model in MODELS:
            spec = MODELS[model]
        else:
            raise ValueError(f"unknown printer model {model!r}; known: {', '.join(MODELS)}")
        if clock is not None and time_scale is not None:
            raise ValueError("pass a clock or a time_scale, not both")
        if plate_sensor is not None and not spec.has_plate_sensor:
            raise ValueError(f"model {spec.name!r} has no plate sensor")
        self._model = spec
        self._name = name or spec.name
        self._clock = clock if clock is not None else SimClock(time_scale or 1.0)
        now = self._clock.now()
        self._board = Board(
            hotend=HeaterModel(spec.hotend),
            bed=HeaterModel(spec.bed),
            time=now,
            last_refresh=now,
            watchdog_timeout=watchdog_timeout,
        )
        sensor = (plate_sensor or PlateSensor()) if spec.has_plate_sensor else None
        self._plate = Plate(sensor, seed=seed)
        if loadout is None:
            loadout = default_loadout(spec.material_slots)
        elif loadout.slot_count != spec.material_slots:
            slots = spec.material_slots
            msg = f"model {spec.name!r} has {slots} material slots, not {loadout.slot_count}"
            raise ValueError(msg)
        self._loadout = SimLoadout(loadout)
        self._screen = SimScreen(self._clock, loadout=self._loadout)
        self._storage = SimStorage(storage_dir)
        self._print: SimulatedPrint | None = None
        self._print_started = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._attendant_after_s = attendant_after_s
        self._attendants: set[asyncio.Task[None]] = set()
        self._eject_s = eject_s
        self._eject_jammed = False
        self.power_switch: Callable[[float | None], None] | None = None
        """Cuts this printer's power for so many simulated seconds (None: for good), if it runs
        behind a switch (`printfleet.sim.faults.PoweredPrinter`): a simulated power loss."""

    # -- power -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Power on: open the task group that prints run in."""
        if self._tasks is not None:
            raise RuntimeError("printer is already on")
        tasks = asyncio.TaskGroup()
        await tasks.__aenter__()
        self._tasks = tasks
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Power off: a running print fails, and the heaters go cold."""
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        if self._print is not None:
            self._print.abort(PrintOutcomeKind.FAILED, "power off")
        # Nobody tends a printer that is off; the group would otherwise wait for them to come.
        for attendant in self._attendants:
            attendant.cancel()
        try:
            await tasks.__aexit__(exc_type, exc, traceback)
        finally:
            self._now().heaters_off()

    # -- the Hardware port -------------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model's short name."""
        return self._model.name

    @property
    def name(self) -> str:
        """This printer's name (its model's unless given)."""
        return self._name

    @property
    def has_plate_sensor(self) -> bool:
        """Whether the model has a plate sensor."""
        return self._model.has_plate_sensor

    @property
    def simulated(self) -> bool:
        """Always: this printer is a simulation."""
        return True

    @property
    def clock(self) -> SimClock:
        """The hardware clock."""
        return self._clock

    @property
    def screen(self) -> SimScreen:
        """The screen; `screen.answer` is how a simulated person replies to prompts."""
        return self._screen

    @property
    def storage(self) -> SimStorage:
        """The SD card."""
        return self._storage

    def max_target(self, heater: HeaterId) -> float:
        """The highest target the firmware accepts for `heater`."""
        return self._board.heater(heater).params.max_target

    def read_heater(self, heater: HeaterId) -> HeaterReading:
        """The heater's reading now."""
        return self._now().read(heater)

    def read_plate(self) -> PlateReading:
        """The plate sensor's reading, or `UNKNOWN` without one."""
        return self._plate.read()

    def current_print(self) -> SimulatedPrint | None:
        """The print that is heating, printing or paused, if any."""
        current = self._print
        return current if current is not None and current.active else None

    def loadout(self) -> Loadout:
        """What is loaded now."""
        return self._loadout.current

    async def set_material(self, slot: int, material: str | None, colour: str | None) -> None:
        """Record what `slot` holds (None: emptied)."""
        self._loadout.set_material(slot, material, colour)

    async def set_nozzle(self, nozzle_um: int) -> None:
        """Record the nozzle fitted."""
        self._loadout.set_nozzle(nozzle_um)

    async def next_loadout_change(self) -> Loadout:
        """Wait for the loadout to change."""
        return await self._loadout.next_change()

    async def simulate(self, action: str, fault: str | None) -> None:
        """Act out a ``simulate`` command: take the print off (``remove_print``), strike with a
        fault (``fault``, ``KIND[:ARG]`` as ``--fault`` names them) or repair every heater
        fault and the fan (``clear_fault``; a fault the agent latched stays until a person
        clears it). Raises `HardwareError` for what cannot be acted out."""
        # Imported here: the faults module builds its power switch on this one.
        from printfleet.sim.faults import HEATER_FAULTS, FaultKind, fault_now  # noqa: PLC0415

        match action:
            case "remove_print":
                if self.current_print() is not None:
                    raise HardwareError("a print is running: there is nothing to take off yet")
                log.info("took %d print(s) off %s", self._plate.remove_all(), self._name)
            case "clear_fault":
                board = self._now()
                for heater in HeaterId:
                    for broken in board.heater(heater).faults:
                        board.heater(heater).clear_fault(broken)
                board.fan_failed = False
            case "fault" if fault is not None:
                try:
                    struck = fault_now(self._name, fault)
                except ValueError as error:
                    raise HardwareError(str(error)) from None
                if struck.kind is not FaultKind.POWER_LOSS:
                    self.inject_fault(struck.heater, HEATER_FAULTS[struck.kind])
                elif self.power_switch is None:
                    raise HardwareError(
                        f"{self._name} has no power switch to cut: run it in printfleet sim or demo"
                    )
                else:
                    self.power_switch(struck.off_for_s)
                log.warning("simulated fault on %s: %s", self._name, struck.describe())
            case _:
                raise HardwareError(f"cannot simulate {action!r} (fault: {fault!r})")

    async def set_heater_target(self, heater: HeaterId, celsius: float) -> None:
        """Set a heater's target; 0 turns it off."""
        self._now().set_target(heater, celsius)

    async def heaters_off(self) -> None:
        """Turn every heater off (a stuck-on heater keeps heating: that is its fault)."""
        self._now().heaters_off()

    async def set_fan(self, fraction: float) -> None:
        """Set the part-cooling fan, clamped to 0..1."""
        self._now().set_fan(fraction)

    async def refresh_watchdog(self) -> None:
        """Restart the board watchdog's period."""
        self._now().refresh_watchdog()

    async def start_print(self, file_name: str) -> SimulatedPrint:
        """Start printing a stored file.

        The hardware does not judge whether it *should* print — that is the agent's safety gate —
        but physics remembers: a print onto an occupied plate is counted by `plate`.
        """
        tasks = self._tasks
        if tasks is None:
            raise HardwareError("printer is off: use `async with printer`")
        if self.current_print() is not None:
            raise PrinterBusyError("a print is already running")
        path = await asyncio.to_thread(_printable, self._storage.path_of(file_name))
        size = await asyncio.to_thread(lambda: path.stat().st_size)
        if self.current_print() is not None:
            raise PrinterBusyError("a print is already running")  # another start won the race
        self._now()
        handle = SimulatedPrint(
            file_name=file_name,
            path=path,
            file_size=size,
            clock=self._clock,
            board=self._board,
            plate=self._plate,
        )
        self._print = handle
        self._print_started.set()
        tasks.create_task(handle.run(), name=f"sim-print:{self._name}:{file_name}")
        if self._attendant_after_s is not None:
            attendant = tasks.create_task(self._attend(handle), name=f"sim-attendant:{self._name}")
            self._attendants.add(attendant)
            attendant.add_done_callback(self._attendants.discard)
        return handle

    async def eject_print(self) -> bool:
        """Run the eject routine: `eject_s` simulated seconds, then the plate is clear, unless
        the mechanism is jammed (False, the prints stay)."""
        if self._eject_s is None:
            raise EjectNotSupportedError(f"{self._name} has no eject mechanism")
        if self.current_print() is not None:
            raise PrinterBusyError("a print is running: there is nothing to eject yet")
        await self._clock.sleep(self._eject_s)
        if self._eject_jammed:
            log.warning("the eject routine of %s jammed", self._name)
            return False
        if self.current_print() is not None:
            raise PrinterBusyError("a print started during the eject routine")
        log.info("%s ejected %d print(s)", self._name, self._plate.remove_all())
        return True

    # -- simulation hooks --------------------------------------------------------------------

    @property
    def eject_s(self) -> float | None:
        """How long the eject routine takes, in simulated seconds; None: no eject mechanism."""
        return self._eject_s

    def jam_ejector(self) -> None:
        """The eject mechanism jams: every eject from now on fails and leaves the plate as is."""
        self._eject_jammed = True

    def repair_ejector(self) -> None:
        """The eject mechanism works again."""
        self._eject_jammed = False

    @property
    def board(self) -> Board:
        """The thermal board, advanced to now."""
        return self._now()

    async def wait_for_print(self) -> None:
        """Until a print has started on this printer (at once if one ever has)."""
        await self._print_started.wait()

    @property
    def plate(self) -> Plate:
        """What lies on the plate."""
        return self._plate

    @property
    def watchdog_tripped(self) -> bool:
        """Whether the board watchdog has cut heater power (latched until cleared)."""
        return self._now().watchdog_tripped

    def clear_watchdog_trip(self) -> None:
        """Clear the watchdog latch, as a firmware restart would."""
        self._now().clear_watchdog_trip()

    def body_temperature(self, heater: HeaterId) -> float:
        """The true temperature of the heater's block or plate, whatever its sensor says."""
        return self._now().heater(heater).body_temp

    def inject_fault(self, heater: HeaterId, fault: HeaterFault) -> None:
        """Make `fault` happen to `heater` from now on."""
        self._now().heater(heater).add_fault(fault)

    def clear_fault(self, heater: HeaterId, fault: HeaterFault) -> None:
        """Repair `fault` on `heater`."""
        self._now().heater(heater).clear_fault(fault)

    def fail_fan(self) -> None:
        """The part-cooling fan stops spinning, whatever it is told."""
        self._now().fan_failed = True

    def repair_fan(self) -> None:
        """The part-cooling fan works again."""
        self._now().fan_failed = False

    def remove_print(self) -> int:
        """A person or robot clears the plate; returns how many objects were removed."""
        if self.current_print() is not None:
            raise RuntimeError("cannot clear the plate while printing")
        return self._plate.remove_all()

    @property
    def attendant_after_s(self) -> float | None:
        """How long after a print's end the attendant clears the plate; None: no attendant."""
        return self._attendant_after_s

    def tend(self) -> bool:
        """A person at the printer: takes any print off and, without a sensor, confirms the
        plate on the screen. Returns whether there was anything to do; nothing while printing."""
        if self.current_print() is not None:
            return False
        removed = self._plate.remove_all()
        confirmed = False
        if not self._model.has_plate_sensor and PLATE_PROMPT_ID in self._screen.open_prompts:
            self._screen.answer(
                PLATE_PROMPT_ID, self._screen.open_prompts[PLATE_PROMPT_ID].options[0]
            )
            confirmed = True
        return bool(removed) or confirmed

    async def _attend(self, handle: SimulatedPrint) -> None:
        await handle.wait()
        after = self._attendant_after_s
        assert after is not None  # noqa: S101 - only started with an attendant
        await self._clock.sleep(after)
        if not self._model.has_plate_sensor:
            # The agent puts the plate question up as it journals the print's end; a person who
            # came at once waits a moment for it (a printer whose plate check is off asks nothing).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_PROMPT_WAIT_S):
                    await self._screen.wait_for_prompt(PLATE_PROMPT_ID)
        if self.tend():
            log.info("attendant cleared the plate of %s", self._name)

    def _now(self) -> Board:
        self._board.advance_to(self._clock.now())
        return self._board


_ZIP_MAGIC = b"PK\x03\x04"
_PLATE_GCODE = re.compile(r"Metadata/plate_(\d+)\.gcode")


def _printable(path: Path) -> Path:
    """The G-code to run for a stored file: the file itself, or a sliced 3MF's first plate.

    A ``.gcode.3mf`` (Bambu Studio, Orca) is a zip holding ``Metadata/plate_N.gcode``; real
    printers run its plate from the archive, so the simulator unpacks the lowest-numbered plate
    beside it (hidden, so storage listings ignore it) and runs that. Blocking: call in a thread.
    """
    with path.open("rb") as handle:
        if handle.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
            return path
    try:
        with zipfile.ZipFile(path) as archive:
            plates = sorted(
                (int(match.group(1)), name)
                for name in archive.namelist()
                if (match := _PLATE_GCODE.fullmatch(name))
            )
            if not plates:
                msg = f"{path.name} is a 3MF archive without Metadata/plate_N.gcode"
                raise HardwareError(msg)
            unpacked = path.with_name(f".{path.name}.plate.gcode")
            with archive.open(plates[0][1]) as source, unpacked.open("wb") as target:
                shutil.copyfileobj(source, target)
    except zipfile.BadZipFile as error:
        raise HardwareError(f"{path.name} is a broken 3MF archive: {error}") from None
    return unpacked
