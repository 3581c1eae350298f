"""The simulated firmware's G-code runner: a pure interpreter and the async print that drives it.

`GcodeInterpreter` turns lines into timed effects (moves, dwells, heater and fan commands) and keeps
layer and M73 progress; `SimulatedPrint` streams a stored file through it on the hardware clock.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from printfleet.agent.hardware import (
    HardwareError,
    HeaterId,
    PrintOutcome,
    PrintOutcomeKind,
    PrintProgress,
    PrintState,
)
from printfleet.gcode.metadata import (
    GcodeMetadata,
    SlicerCommentKind,
    comment_of,
    parse_metadata,
    read_slicer_comment,
)
from printfleet.sim.clock import SimClock
from printfleet.sim.plate import Plate
from printfleet.sim.storage import read_chunk
from printfleet.sim.thermal import Board

__all__ = [
    "DEFAULT_FEED_MM_MIN",
    "TEMPERATURE_WINDOW_K",
    "Dwell",
    "GcodeEffect",
    "GcodeInterpreter",
    "Move",
    "SetFan",
    "SetTemperature",
    "SimulatedPrint",
    "TemperatureWait",
    "scan_metadata",
]

DEFAULT_FEED_MM_MIN = 1500.0
"""Feed rate before any F word: Marlin's default of 25 mm/s."""

TEMPERATURE_WINDOW_K = 1.0
"""M109/M190 are satisfied once the reading is within this many kelvin of the target."""

_WORD = re.compile(r"([A-Z])\s*([-+]?(?:\d+\.?\d*|\.\d+))?")
_LINE_NUMBER = re.compile(r"^N\d+\s*")
_CHECKSUM = re.compile(r"\*\d+\s*$")
_CHUNK_BYTES = 64 * 1024
_FULL_TURN = 2.0 * math.pi


@dataclass(frozen=True, slots=True)
class Move:
    """A move (G0-G3) of `duration_s`, pushing `extruded_mm` of filament (negative: retract)."""

    duration_s: float
    extruded_mm: float


@dataclass(frozen=True, slots=True)
class Dwell:
    """A pause in place (G4)."""

    duration_s: float


class TemperatureWait(StrEnum):
    """How a temperature command waits: not (M104/M140), while heating (S), or both ways (R)."""

    NONE = "none"
    HEATING = "heating"
    EITHER_WAY = "either_way"


@dataclass(frozen=True, slots=True)
class SetTemperature:
    """M104/M109/M140/M190."""

    heater: HeaterId
    celsius: float
    wait: TemperatureWait


@dataclass(frozen=True, slots=True)
class SetFan:
    """M106/M107: the part-cooling fan, 0..1."""

    fraction: float


GcodeEffect = Move | Dwell | SetTemperature | SetFan


class GcodeInterpreter:
    """Turns G-code lines into effects, tracking position, feed rate, layers and M73 progress.

    Moves take distance ÷ feed rate, with no acceleration — the estimate OctoPrint makes. Commands
    it does not model (homing included) take no time.
    """

    def __init__(self) -> None:
        self.position = {"X": 0.0, "Y": 0.0, "Z": 0.0, "E": 0.0}
        self.feed_mm_min = DEFAULT_FEED_MM_MIN
        self.relative = False
        self.relative_extrusion = False
        self.layer = 0
        self.total_layers: int | None = None
        self.m73_percent: float | None = None
        self.m73_minutes_left: float | None = None
        self.m73_updates = 0
        """How many M73 lines have set a time left, so a runner can tell when one arrives."""
        self._layer_marker: SlicerCommentKind | None = None

    def feed(self, line: str) -> GcodeEffect | None:
        """Interpret one line; returns what the machine must do, if anything takes effect."""
        comment = comment_of(line)
        if comment is not None:
            self._note_comment(comment)
            line = line.partition(";")[0]
        code = _CHECKSUM.sub("", _LINE_NUMBER.sub("", line.strip().upper()))
        words = _WORD.findall(code)
        if not words or words[0][0] not in "GM" or not words[0][1]:
            return None
        letter, number = words[0]
        command = f"{letter}{float(number):g}"
        params = {key: float(value) if value else None for key, value in words[1:]}
        return self._execute(command, params)

    def _note_comment(self, comment: str) -> None:
        found = read_slicer_comment(comment)
        if found is None:
            return
        if found.kind in (SlicerCommentKind.LAYER_CHANGE, SlicerCommentKind.LAYER_INDEX):
            # As in parse_metadata: count one marker style, the first seen.
            if self._layer_marker is None:
                self._layer_marker = found.kind
            if found.kind is self._layer_marker:
                self.layer += 1
        elif found.kind is SlicerCommentKind.TOTAL_LAYERS:
            self.total_layers = int(found.value)

    def _execute(self, command: str, params: dict[str, float | None]) -> GcodeEffect | None:
        match command:
            case "G0" | "G1":
                return self._move(params)
            case "G2" | "G3":
                return self._arc(params, clockwise=command == "G2")
            case "G4":
                seconds = params.get("S")
                millis = params.get("P")
                if seconds is not None:
                    return Dwell(max(0.0, seconds))
                return Dwell(max(0.0, (millis or 0.0) / 1000.0))
            case "G28":
                axes = [a for a in "XYZ" if a in params] or ["X", "Y", "Z"]
                for axis in axes:
                    self.position[axis] = 0.0
            case "G90":
                self.relative = self.relative_extrusion = False
            case "G91":
                self.relative = self.relative_extrusion = True
            case "M82":
                self.relative_extrusion = False
            case "M83":
                self.relative_extrusion = True
            case "G92":
                given = {a: v for a, v in params.items() if a in self.position}
                for axis in given or self.position:
                    self.position[axis] = given.get(axis) or 0.0
            case "M104" | "M109" | "M140" | "M190":
                return self._temperature(command, params)
            case "M106":
                if params.get("P") not in (None, 0.0):
                    return None  # only the part-cooling fan (P0) is modelled
                speed = params.get("S")
                return SetFan(min(1.0, max(0.0, (255.0 if speed is None else speed) / 255.0)))
            case "M107":
                return SetFan(0.0)
            case "M73":
                self._progress(params)
        return None

    def _progress(self, params: dict[str, float | None]) -> None:
        percent = params.get("P")
        minutes = params.get("R")
        layer = params.get("L")
        if percent is not None:
            self.m73_percent = min(100.0, max(0.0, percent))
        if minutes is not None:
            self.m73_minutes_left = max(0.0, minutes)
            self.m73_updates += 1
        if layer is not None:
            # BambuStudio reports the layer with M73 L<n>.
            self.layer = max(0, int(layer))

    def _target(self, axis: str, params: dict[str, float | None]) -> float:
        value = params.get(axis)
        if value is None:
            return self.position[axis]
        relative = self.relative_extrusion if axis == "E" else self.relative
        return self.position[axis] + value if relative else value

    def _take_feed(self, params: dict[str, float | None]) -> float:
        feed = params.get("F")
        if feed is not None and feed > 0.0:
            self.feed_mm_min = feed
        return self.feed_mm_min / 60.0

    def _move(self, params: dict[str, float | None]) -> Move | None:
        speed = self._take_feed(params)
        end = {axis: self._target(axis, params) for axis in self.position}
        deltas = {axis: end[axis] - self.position[axis] for axis in self.position}
        self.position = end
        travel = math.hypot(deltas["X"], deltas["Y"], deltas["Z"])
        # An extruder-only move (a retraction) runs at the feed rate on the E axis.
        length = travel if travel > 0.0 else abs(deltas["E"])
        if length == 0.0:
            return None
        return Move(length / speed, deltas["E"])

    def _arc(self, params: dict[str, float | None], *, clockwise: bool) -> Move | None:
        speed = self._take_feed(params)
        start = dict(self.position)
        end = {axis: self._target(axis, params) for axis in self.position}
        self.position = end
        dx, dy = end["X"] - start["X"], end["Y"] - start["Y"]
        chord = math.hypot(dx, dy)
        radius_word = params.get("R")
        if radius_word is not None and radius_word != 0.0:
            radius = abs(radius_word)
            half = min(1.0, chord / (2.0 * radius))
            sweep = 2.0 * math.asin(half)
            if radius_word < 0.0:
                sweep = _FULL_TURN - sweep  # negative R asks for the long way round
        else:
            i, j = params.get("I") or 0.0, params.get("J") or 0.0
            radius = math.hypot(i, j)
            cx, cy = start["X"] + i, start["Y"] + j
            a0 = math.atan2(start["Y"] - cy, start["X"] - cx)
            a1 = math.atan2(end["Y"] - cy, end["X"] - cx)
            sweep = (a0 - a1 if clockwise else a1 - a0) % _FULL_TURN
            if sweep == 0.0:
                sweep = _FULL_TURN  # same start and end: a full circle
        length = math.hypot(radius * sweep, end["Z"] - start["Z"])
        if length == 0.0:
            return None
        return Move(length / speed, end["E"] - start["E"])

    def _temperature(self, command: str, params: dict[str, float | None]) -> SetTemperature | None:
        heater = HeaterId.HOTEND if command in ("M104", "M109") else HeaterId.BED
        waits = command in ("M109", "M190")
        either_way = params.get("R")
        target = params.get("S") if either_way is None or not waits else either_way
        if target is None:
            return None
        if not waits:
            wait = TemperatureWait.NONE
        elif either_way is not None:
            wait = TemperatureWait.EITHER_WAY
        else:
            wait = TemperatureWait.HEATING
        return SetTemperature(heater, max(0.0, target), wait)


def scan_metadata(path: Path) -> GcodeMetadata:
    """`parse_metadata` over a file (blocking; call it from a worker thread)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        return parse_metadata(lines)


class _PrintStoppedError(Exception):
    """Raised inside the runner when the print must end early."""

    def __init__(self, kind: PrintOutcomeKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _LineReader:
    """Reads a file a chunk at a time in a worker thread and yields whole lines."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._rest = b""
        self._eof = False

    async def next_lines(self) -> list[bytes] | None:
        """The next complete lines; `None` once the file is exhausted."""
        if self._eof:
            return None
        chunk = await asyncio.to_thread(read_chunk, self._path, self._offset, _CHUNK_BYTES)
        self._offset += len(chunk)
        if not chunk:
            self._eof = True
            return [self._rest] if self._rest else None
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        return lines


class SimulatedPrint:
    """A `PrintHandle`: one file streamed through the interpreter on the hardware clock.

    The runner works ahead of the clock by up to a short quantum and then sleeps until the clock
    catches up, so a print costs a few wake-ups per real second however fine its moves are. The
    timeline itself (and so `elapsed`) is the sum of the moves' and dwells' durations and of the
    heating waits as the thermal model predicts them, not of how long the event loop took, as
    long as the runner keeps up with the clock. Heater and fan commands wait for the clock first,
    so they take effect at the right hardware time. Pausing lets the moves already worked ahead
    finish, as a real printer's planner does; a heating wait pauses at once.
    """

    def __init__(
        self,
        *,
        file_name: str,
        path: Path,
        file_size: int,
        clock: SimClock,
        board: Board,
        plate: Plate,
    ) -> None:
        self._file_name = file_name
        self._path = path
        self._file_size = max(1, file_size)
        self._clock = clock
        self._board = board
        self._plate = plate
        self._interpreter = GcodeInterpreter()
        self._metadata = GcodeMetadata(None, None, None, None)
        self._state = PrintState.PRINTING
        self.started_at = clock.now()
        self._cursor = self.started_at
        self._active = 0.0
        self._bytes_done = 0
        self._on_plate = False
        self._extruded_since_sync = 0.0
        self._synced_cursor = self._cursor
        self._active_at_m73 = 0.0
        self._pause_requested = False
        self._stop: _PrintStoppedError | None = None
        self._wake = asyncio.Event()
        self._outcome: PrintOutcome | None = None
        self._ended: asyncio.Future[PrintOutcome] = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()
        # Work ahead by about 10 ms of real time (at least 1 hardware second): a bounded number of
        # wake-ups per real second whatever the time scale.
        self._ahead_s = max(1.0, 0.01 * clock.time_scale)
        # Heating waits are predicted on a copy of the board a chunk at a time (5 real ms, at least
        # 5 and at most 600 hardware seconds), then checked against the real board.
        self._heat_chunk_s = min(600.0, max(5.0, 0.005 * clock.time_scale))

    @property
    def file_name(self) -> str:
        """The stored file being printed."""
        return self._file_name

    @property
    def outcome(self) -> PrintOutcome | None:
        """How the print ended, once it has."""
        return self._outcome

    @property
    def active(self) -> bool:
        """Whether the print is still heating, printing or paused."""
        return self._outcome is None

    def progress(self) -> PrintProgress:
        """Where the print is now."""
        if self._outcome is not None:
            elapsed = self._outcome.elapsed
        else:
            lag = self._clock.now() - self._cursor
            if self._state is PrintState.PAUSED:
                lag = 0.0
            elif self._state is PrintState.PRINTING:
                lag = min(0.0, lag)  # worked-ahead moves have not happened yet
            else:
                lag = max(0.0, lag)  # heating time counts as it passes
            elapsed = max(0.0, self._active + lag)
        if self._state is PrintState.COMPLETED:
            percent = 100.0
        elif self._interpreter.m73_percent is not None:
            percent = self._interpreter.m73_percent
        else:
            percent = min(100.0, 100.0 * self._bytes_done / self._file_size)
        return PrintProgress(
            state=self._state,
            percent=percent,
            layer=self._interpreter.layer,
            total_layers=self._metadata.layer_count or self._interpreter.total_layers,
            elapsed=elapsed,
            time_left=self._time_left(percent, elapsed),
        )

    def _time_left(self, percent: float, elapsed: float) -> float | None:
        if self._state is PrintState.COMPLETED:
            return 0.0
        if self._interpreter.m73_minutes_left is not None:
            since = elapsed - self._active_at_m73
            return max(0.0, 60.0 * self._interpreter.m73_minutes_left - max(0.0, since))
        fraction = percent / 100.0
        if self._metadata.estimated_time_s is not None:
            return max(0.0, self._metadata.estimated_time_s * (1.0 - fraction))
        if fraction > 0.0:
            return elapsed * (1.0 - fraction) / fraction
        return None

    async def pause(self) -> None:
        """Pause once the moves already worked ahead are done."""
        if self._outcome is None and self._state is not PrintState.PAUSED:
            self._pause_requested = True
            self._wake.set()

    async def resume(self) -> None:
        """Resume a paused (or pausing) print."""
        if self._outcome is None and self._pause_requested:
            self._pause_requested = False
            self._wake.set()

    async def cancel(self) -> None:
        """Stop now and turn the heaters and fan off."""
        self.abort(PrintOutcomeKind.CANCELLED, "cancelled")

    def abort(self, kind: PrintOutcomeKind, reason: str) -> None:
        """End the print at the next opportunity (the printer uses this on power-off)."""
        if self._outcome is None and self._stop is None:
            self._stop = _PrintStoppedError(kind, reason)
            self._wake.set()

    async def wait_until(self, predicate: Callable[[PrintProgress], bool]) -> PrintProgress:
        """Wait until `predicate` holds for the print's progress, and return that progress.

        Progress is re-checked whenever the runner catches up with the clock or changes state.
        Raises `RuntimeError` if the print ends without the predicate ever holding.
        """
        while not predicate(progress := self.progress()):
            if self._outcome is not None:
                raise RuntimeError(f"print ended ({self._outcome.kind}) before the condition held")
            await self._changed.wait()
        return progress

    def _notify(self) -> None:
        # One event per generation: waking every waiter once, then arming a fresh one.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self) -> PrintOutcome:
        """Wait for the print to end."""
        # Shielded: a waiter that gives up must not cancel the outcome for everyone else.
        return await asyncio.shield(self._ended)

    async def run(self) -> None:
        """The print's task body: run to an outcome, whatever happens."""
        kind, reason = PrintOutcomeKind.COMPLETED, ""
        try:
            await self._run()
        except _PrintStoppedError as stop:
            kind, reason = stop.kind, stop.reason
        except (OSError, UnicodeError, HardwareError) as exc:
            kind, reason = PrintOutcomeKind.FAILED, f"{type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            # The owner's task group is shutting down: the printer lost power mid-print.
            self._finish(PrintOutcomeKind.FAILED, "power lost")
            raise
        self._finish(kind, reason)

    def _finish(self, kind: PrintOutcomeKind, reason: str) -> None:
        now = self._clock.now()
        self._board.advance_to(now)
        self._board.extrusion_rate = 0.0
        if kind is not PrintOutcomeKind.COMPLETED:
            # The firmware's cancel/fail sequence; a completed file turned its heaters off itself.
            self._board.heaters_off()
            self._board.set_fan(0.0)
        self._state = PrintState(kind.value)
        self._outcome = PrintOutcome(kind, reason, self._active, max(now, self._cursor))
        self._ended.set_result(self._outcome)
        self._notify()

    async def _run(self) -> None:
        self._metadata = await asyncio.to_thread(scan_metadata, self._path)
        reader = _LineReader(self._path)
        lines = await reader.next_lines()
        # Reading the file's metadata and first chunk is preparation, not printing: the timeline
        # starts once they are in.
        self._cursor = self._synced_cursor = max(self._cursor, self._clock.now())
        while lines is not None:
            for raw in lines:
                self._bytes_done += len(raw) + 1
                m73_seen = self._interpreter.m73_updates
                effect = self._interpreter.feed(raw.decode("utf-8", "replace"))
                if self._interpreter.m73_updates != m73_seen:
                    self._active_at_m73 = self._active
                await self._apply(effect)
                ahead = self._cursor - self._clock.now()
                if self._pause_requested or self._stop is not None or ahead > self._ahead_s:
                    await self._sync()
            lines = await reader.next_lines()
        await self._sync()

    async def _apply(self, effect: GcodeEffect | None) -> None:
        if isinstance(effect, Move | Dwell) and not math.isfinite(effect.duration_s):
            # A 400-digit number overflows to infinity; no printer would wait that long.
            raise _PrintStoppedError(PrintOutcomeKind.FAILED, "a move or dwell never ends")
        match effect:
            case Move(duration_s=duration, extruded_mm=extruded):
                self._cursor += duration
                self._active += duration
                if extruded > 0.0:
                    self._extruded_since_sync += extruded
                    if not self._on_plate:
                        self._on_plate = True
                        self._plate.add_print()
            case Dwell(duration_s=duration):
                self._cursor += duration
                self._active += duration
            case SetFan(fraction=fraction):
                await self._sync()
                self._board.set_fan(fraction)
            case SetTemperature(heater=heater, celsius=celsius, wait=wait):
                await self._sync()
                self._board.set_target(heater, celsius)
                if wait is not TemperatureWait.NONE and celsius > 0.0:
                    await self._wait_for_temperature(heater, celsius, wait)
            case None:
                pass

    async def _sync(self) -> None:
        """Let the clock catch up with the work done ahead, then honour pause and stop requests."""
        await self._sleep_until(self._cursor)
        self._board.advance_to(self._clock.now())
        worked = self._cursor - self._synced_cursor
        # Melting filament cools the block: feed the board the extrusion rate of the work just
        # done, the best guess for the work about to be done.
        self._board.extrusion_rate = self._extruded_since_sync / worked if worked > 0.0 else 0.0
        self._extruded_since_sync = 0.0
        self._synced_cursor = self._cursor
        self._notify()
        self._check_board()
        if self._pause_requested:
            await self._paused()

    async def _paused(self) -> None:
        resume_state = self._state
        self._state = PrintState.PAUSED
        self._board.extrusion_rate = 0.0
        self._notify()
        while self._pause_requested:
            self._raise_if_stopped()
            self._wake.clear()
            await self._wake.wait()
        self._raise_if_stopped()
        self._state = resume_state
        self._notify()
        # Paused time is not print time: the timeline restarts from now.
        self._cursor = self._synced_cursor = max(self._cursor, self._clock.now())

    async def _wait_for_temperature(
        self, heater: HeaterId, target: float, wait: TemperatureWait
    ) -> None:
        """Wait like M109/M190, ending at the moment the reading gets there.

        Rather than poll, the wait predicts on a copy of the board when the reading will get
        there and sleeps until then, so its length does not depend on the time scale or on how
        promptly the event loop wakes the runner. It then checks the real board, in case anything
        (a fault, the agent) changed the course of things, and predicts again if so.
        """

        def reached(reading: float) -> bool:
            if wait is TemperatureWait.HEATING and reading >= target - TEMPERATURE_WINDOW_K:
                return True
            return abs(reading - target) <= TEMPERATURE_WINDOW_K

        self._state = PrintState.HEATING
        self._board.extrusion_rate = 0.0
        self._notify()
        # `probe` is a copy of the board stepped ahead to where the wait is known not to have
        # ended yet, or to where it ends (`predicted`); `None` until the first look ahead.
        probe: Board | None = None
        predicted: float | None = None
        while True:
            now = self._clock.now()
            self._board.advance_to(now)
            self._check_board()
            if reached(self._board.read(heater).temperature):
                if probe is None:
                    done_at = self._cursor  # no wait at all
                elif predicted is not None:
                    done_at = min(predicted, now)
                else:
                    # It got there after the look-ahead ended, while the runner slept: the probe
                    # picks up where it stopped and finds when.
                    crossing = probe.advance_until(heater, reached, now)
                    done_at = crossing if crossing is not None else now
                break
            if self._pause_requested:
                self._active += max(0.0, now - self._cursor)
                self._cursor = max(self._cursor, now)
                await self._paused()
                self._state = PrintState.HEATING
                self._notify()
                probe = predicted = None
                continue
            probe = self._board.look_ahead()
            predicted = probe.advance_until(heater, reached, now + self._heat_chunk_s)
            await self._sleep_until(probe.time if predicted is None else predicted, pausable=True)
        done_at = max(done_at, self._cursor)
        self._active += done_at - self._cursor
        self._cursor = self._synced_cursor = done_at
        self._state = PrintState.PRINTING

    def _check_board(self) -> None:
        tripped_at = self._board.watchdog_tripped_at
        if tripped_at is not None and tripped_at >= self.started_at:
            raise _PrintStoppedError(PrintOutcomeKind.FAILED, "board watchdog cut heater power")
        self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        if self._stop is not None:
            raise self._stop

    async def _sleep_until(self, when: float, *, pausable: bool = False) -> None:
        """Sleep until hardware time `when`, waking early to stop, or to pause if `pausable`.

        Sleeps over worked-ahead moves are not pausable: those moves finish first.
        """
        while (remaining := when - self._clock.now()) > 0.0:
            self._raise_if_stopped()
            if pausable and self._pause_requested:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(self._clock.real_seconds(remaining)):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._raise_if_stopped()
