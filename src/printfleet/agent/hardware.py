"""The agent's Hardware port: everything a printer agent may ask of one printer.

The simulator (`printfleet.sim`) implements it first; bridges to real printers implement it later.
Pure types and protocols only — no I/O happens in this module.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# One vocabulary for plate readings from the sensor to the gate: the protocol's.
from printfleet.protocol.gate import PlateReading

# And for what a printer has loaded: the protocol's slots, as the printer reports them.
from printfleet.protocol.messages import MaterialSlot
from printfleet.protocol.printer_state import missing_slot, with_material

__all__ = [
    "WATCHDOG_TIMEOUT_S",
    "EjectNotSupportedError",
    "FileNameError",
    "Hardware",
    "HardwareClock",
    "HardwareError",
    "HeaterId",
    "HeaterReading",
    "Loadout",
    "LoadoutError",
    "MaterialSlot",
    "MessageLevel",
    "PlateReading",
    "PrintHandle",
    "PrintOutcome",
    "PrintOutcomeKind",
    "PrintProgress",
    "PrintState",
    "PrinterBusyError",
    "Prompt",
    "PromptAnswer",
    "Screen",
    "Storage",
    "StoredFile",
    "TargetOutOfRangeError",
    "validate_file_name",
]

WATCHDOG_TIMEOUT_S = 3.0
"""The board cuts heater power if `Hardware.refresh_watchdog` was not called for this long."""


class HardwareError(Exception):
    """The printer refused or could not carry out a request."""


class TargetOutOfRangeError(HardwareError, ValueError):
    """A heater target below zero or above the firmware's limit for that heater."""


class PrinterBusyError(HardwareError):
    """A print was asked to start while another one is running or paused."""


class FileNameError(HardwareError, ValueError):
    """A storage file name that is empty, too long, hidden or could escape the storage root."""


class LoadoutError(HardwareError, ValueError):
    """A material slot the printer does not have."""


class EjectNotSupportedError(HardwareError):
    """An eject was asked of a printer without an eject mechanism."""


class HeaterId(StrEnum):
    """The heaters every supported printer has."""

    HOTEND = "hotend"
    BED = "bed"


@dataclass(frozen=True, slots=True)
class HeaterReading:
    """One heater's state as the board reports it.

    `temperature` is what the sensor reads — it may be wrong when the sensor is faulty, which is the
    point: the agent's thermal protection has to judge from readings alone. `power` is the duty the
    firmware commands (0..1), not necessarily what reaches the heater. `target` is 0 when off.
    `read_at` is in hardware-clock seconds.
    """

    heater: HeaterId
    temperature: float
    target: float
    power: float
    read_at: float


class MessageLevel(StrEnum):
    """Severity of a message on the printer's screen."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A question on the printer's screen that a person answers by picking one option."""

    prompt_id: str
    text: str
    options: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("a prompt needs at least one option")
        if len(set(self.options)) != len(self.options):
            raise ValueError("prompt options must be distinct")


@dataclass(frozen=True, slots=True)
class PromptAnswer:
    """A person's answer to a prompt, made at the printer at `answered_at` (hardware clock)."""

    prompt_id: str
    option: str
    answered_at: float


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file on the printer's storage (SD card)."""

    name: str
    size: int


class PrintState(StrEnum):
    """Where a print is; the last three are terminal."""

    HEATING = "heating"
    PRINTING = "printing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PrintProgress:
    """A snapshot of a print.

    `elapsed` counts hardware seconds spent heating or printing, not paused. `total_layers` and
    `time_left` are `None` when neither the file nor the run so far lets the printer know them.
    """

    state: PrintState
    percent: float
    layer: int
    total_layers: int | None
    elapsed: float
    time_left: float | None


class PrintOutcomeKind(StrEnum):
    """How a print ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PrintOutcome:
    """How and when a print ended; `reason` is empty for a completed print."""

    kind: PrintOutcomeKind
    reason: str
    elapsed: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class Loadout:
    """What a printer has loaded: its filament slots and its nozzle.

    `slot_count` is how many slots it has (4 on an AMS-like material system, 1 for a single
    spool); `materials` holds only the filled ones, ordered by slot. `nozzle_um` is the nozzle's
    diameter in micrometres, None when nobody has said.
    """

    slot_count: int
    materials: tuple[MaterialSlot, ...] = ()
    nozzle_um: int | None = None

    def __post_init__(self) -> None:
        if self.slot_count < 0:
            raise ValueError("slot_count must be zero or more")
        numbers = [slot.slot for slot in self.materials]
        if numbers != sorted(set(numbers)) or any(n > self.slot_count for n in numbers):
            raise ValueError(f"materials must fill distinct slots 1..{self.slot_count}, in order")

    def with_material(self, slot: int, material: str | None, colour: str | None) -> Loadout:
        """This loadout with `slot` holding `material` (None: emptied); raises `LoadoutError`
        for a slot the printer does not have, and pydantic's `ValidationError` for a material
        or colour the protocol cannot carry."""
        problem = missing_slot(slot, self.slot_count)
        if problem is not None:
            raise LoadoutError(problem)
        materials = with_material(self.materials, slot, material, colour)
        return Loadout(self.slot_count, materials, self.nozzle_um)

    def with_nozzle(self, nozzle_um: int) -> Loadout:
        """This loadout with another nozzle fitted."""
        return Loadout(self.slot_count, self.materials, nozzle_um)


class HardwareClock(Protocol):
    """The printer's own clock, in hardware seconds.

    A simulator may run it faster than real time; all thermal checks and deadlines measured against
    the hardware must use it, never the wall clock.
    """

    def now(self) -> float:
        """Seconds on a monotonic hardware clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of hardware time."""
        ...


class Screen(Protocol):
    """The printer's screen: messages, prompts, and the answers people give to them."""

    async def show_message(self, text: str, level: MessageLevel) -> None:
        """Show a message; the newest one replaces the last on a small screen."""
        ...

    async def show_prompt(self, prompt: Prompt) -> None:
        """Show a prompt; showing one with the id of an open prompt replaces it."""
        ...

    async def withdraw_prompt(self, prompt_id: str) -> None:
        """Take a prompt off the screen, so it takes no more answers; unknown ids are ignored."""
        ...

    async def next_answer(self) -> PromptAnswer:
        """Wait for the next answer a person gives to an open prompt."""
        ...


class Storage(Protocol):
    """The printer's file storage (an SD card); flat names, checked by `validate_file_name`."""

    async def list_files(self) -> list[StoredFile]:
        """All files, sorted by name."""
        ...

    async def write(self, name: str, data: bytes | AsyncIterable[bytes]) -> StoredFile:
        """Create or replace a file; readers never see a half-written file."""
        ...

    async def read(self, name: str) -> bytes:
        """A whole file; raises `FileNotFoundError` if it is missing."""
        ...

    def read_chunks(self, name: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """Stream a file in chunks, for files too large to hold in memory."""
        ...

    async def delete(self, name: str) -> None:
        """Remove a file; raises `FileNotFoundError` if it is missing."""
        ...


class PrintHandle(Protocol):
    """One print started by `Hardware.start_print`."""

    @property
    def file_name(self) -> str:
        """The storage file being printed."""
        ...

    def progress(self) -> PrintProgress:
        """Where the print is now."""
        ...

    async def pause(self) -> None:
        """Pause after the moves already queued; a no-op unless printing or heating."""
        ...

    async def resume(self) -> None:
        """Resume a paused print; a no-op unless paused."""
        ...

    async def cancel(self) -> None:
        """Stop the print and turn the heaters off; a no-op once the print has ended."""
        ...

    async def wait(self) -> PrintOutcome:
        """Wait for the print to end."""
        ...


class Hardware(Protocol):
    """One printer, as the agent sees it.

    Reads (`read_heater`, `read_plate`) return the latest state at once; commands are coroutines
    because a bridge has to send them over a link. Firmware-level heater control (PID or bang-bang
    toward the target) is the hardware's job; thermal *protection* is the agent's.
    """

    @property
    def model(self) -> str:
        """The printer model's short name, such as ``x1``."""
        ...

    @property
    def has_plate_sensor(self) -> bool:
        """Whether `read_plate` can return anything but `PlateReading.UNKNOWN`."""
        ...

    @property
    def simulated(self) -> bool:
        """Whether this is a simulated printer (one a person may inject faults into)."""
        ...

    @property
    def clock(self) -> HardwareClock:
        """The clock the hardware runs on."""
        ...

    @property
    def screen(self) -> Screen:
        """The printer's screen."""
        ...

    @property
    def storage(self) -> Storage:
        """The printer's file storage."""
        ...

    def max_target(self, heater: HeaterId) -> float:
        """The highest target the firmware accepts for `heater`, in °C."""
        ...

    def read_heater(self, heater: HeaterId) -> HeaterReading:
        """The heater's latest reading."""
        ...

    def read_plate(self) -> PlateReading:
        """What the plate sensor sees now; `UNKNOWN` without a sensor."""
        ...

    def current_print(self) -> PrintHandle | None:
        """The print that is running or paused, if any."""
        ...

    def loadout(self) -> Loadout:
        """What is loaded now: filament slots and nozzle."""
        ...

    async def set_material(self, slot: int, material: str | None, colour: str | None) -> None:
        """Record what a slot holds (None: emptied), as a person would enter it on the screen;
        raises `LoadoutError` for a slot the printer does not have. No physical effect."""
        ...

    async def set_nozzle(self, nozzle_um: int) -> None:
        """Record the nozzle fitted, in micrometres. No physical effect."""
        ...

    async def next_loadout_change(self) -> Loadout:
        """Wait for the loadout to change (at the screen or through `set_material`/`set_nozzle`);
        returns it as it is then."""
        ...

    async def simulate(self, action: str, fault: str | None) -> None:
        """Act out a ``simulate`` command's `action` (``remove_print``, ``fault`` with `fault`
        as ``KIND[:ARG]``, ``clear_fault``). Only a simulated printer can; anything else raises
        `HardwareError`, as does a fault this printer cannot be given."""
        ...

    async def set_heater_target(self, heater: HeaterId, celsius: float) -> None:
        """Set a target (0 turns the heater off); raises `TargetOutOfRangeError` outside limits."""
        ...

    async def heaters_off(self) -> None:
        """Set every heater's target to 0."""
        ...

    async def set_fan(self, fraction: float) -> None:
        """Set the part-cooling fan, 0..1."""
        ...

    async def refresh_watchdog(self) -> None:
        """Prove the host is alive: the board cuts heater power `WATCHDOG_TIMEOUT_S` after the last
        refresh (a stuck-on heater excepted: nothing can cut it)."""
        ...

    async def start_print(self, file_name: str) -> PrintHandle:
        """Start printing a stored file; raises `PrinterBusyError` or `FileNotFoundError`."""
        ...

    async def eject_print(self) -> bool:
        """Run the printer's eject routine (an eject arm, a plate swapper, a belt) and say
        whether the plate is clear afterwards: False when the routine ran but could not clear
        it (a part stuck, the mechanism jammed). Raises `EjectNotSupportedError` on a printer
        without such a mechanism, `PrinterBusyError` while a print runs."""
        ...


_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.,()+ -]{0,127}")


def validate_file_name(name: str) -> str:
    """Return `name` if it is a safe flat storage name, else raise `FileNameError`.

    Safe means: 1 to 128 characters of letters, digits and ``_.,()+ -``, not starting with a dot,
    dash or space (no hidden files, no option-like names), not ending with a dot or space, and no
    ``..``, so that no name can leave the storage directory whatever a bridge joins it with.
    """
    if not _FILE_NAME.fullmatch(name) or ".." in name or name.endswith((".", " ")):
        raise FileNameError(f"invalid file name: {name!r}")
    return name
