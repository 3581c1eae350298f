"""Scheduled faults for simulated printers: what ``printfleet sim --fault`` and ``demo --fault`` do.

A fault is written ``PRINTER:KIND[:ARG]@WHEN``:

- ``KIND`` is a heater fault (``heater-disconnected``, ``thermistor-detached``, ``sensor-open``,
  ``sensor-short``, ``heater-stuck-on``; ``ARG`` names the heater, ``hotend`` by default or
  ``bed``) or ``power-loss`` (``ARG``, a duration, is how long the power stays off; without it
  the printer stays off until the simulation stops).
- ``WHEN`` is simulated time: ``90s``, ``2m`` or ``1h`` after the simulation starts, or
  ``print+30s``, that long after the first print starts on that printer (heat-up included).

One fault is not a printer's: ``broker:outage[:DURATION]@WHEN`` stops the demo's embedded broker
at ``WHEN`` (simulated time since the start) and starts it again on the same port ``DURATION``
later (30 s by default). Every connection drops: the agents and the cloud see the outage, and
reconnect when the broker is back.

Heater faults stay until the simulation stops: a broken heater does not mend itself. A power
loss stops the printer's agent and any print at once; the journal on disk survives, and when the
power comes back a fresh agent starts from it. The agent is stopped by cancelling it, so it still
publishes "offline" as it goes, where a real printer's broker would publish the agent's Will
("offline" too) a keepalive later: the cloud sees the same presence, only sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import HeaterId
from printfleet.agent.runtime import PrinterAgent
from printfleet.sim.clock import SimClock
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.thermal import HeaterFault

__all__ = [
    "BROKER",
    "BROKER_OUTAGE_S",
    "FAULT_SYNTAX",
    "HEATER_FAULTS",
    "BrokerSwitch",
    "FaultKind",
    "FaultSpec",
    "PoweredPrinter",
    "check_fault_printers",
    "fault_now",
    "parse_fault",
    "run_faults",
]

log = logging.getLogger(__name__)

FAULT_SYNTAX = (
    "PRINTER:KIND[:ARG]@WHEN, e.g. x1-01:heater-disconnected@print+30s, "
    "x1-01:sensor-open:bed@90s or p1-02:power-loss:2m@print+60s; the demo's own broker: "
    "broker:outage[:DURATION]@WHEN, e.g. broker:outage:45s@2m"
)
BROKER = "broker"
"""The target of a broker fault, where a printer's id would be."""
BROKER_SYNTAX = "broker:outage[:DURATION]@WHEN, e.g. broker:outage:45s@2m"
BROKER_OUTAGE_S = 30.0
"""How long a broker outage lasts when its fault gives no duration (simulated seconds)."""


class FaultKind(StrEnum):
    """What can go wrong with a simulated printer."""

    HEATER_DISCONNECTED = "heater-disconnected"
    THERMISTOR_DETACHED = "thermistor-detached"
    SENSOR_OPEN = "sensor-open"
    SENSOR_SHORT = "sensor-short"
    HEATER_STUCK_ON = "heater-stuck-on"
    POWER_LOSS = "power-loss"
    OUTAGE = "outage"
    """The broker's: it stops, and starts again after a while."""


HEATER_FAULTS: Mapping[FaultKind, HeaterFault] = {
    FaultKind.HEATER_DISCONNECTED: HeaterFault.HEATER_DISCONNECTED,
    FaultKind.THERMISTOR_DETACHED: HeaterFault.THERMISTOR_DETACHED,
    FaultKind.SENSOR_OPEN: HeaterFault.SENSOR_OPEN,
    FaultKind.SENSOR_SHORT: HeaterFault.SENSOR_SHORT,
    FaultKind.HEATER_STUCK_ON: HeaterFault.HEATER_STUCK_ON,
}
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smh])")
_FAULT = re.compile(r"(?P<printer>[^:@]+):(?P<kind>[a-z-]+)(?::(?P<arg>[^@]+))?@(?P<when>.+)")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault to inject: on which printer, what, and when (simulated seconds)."""

    printer_id: str
    kind: FaultKind
    at_s: float
    """Seconds after the simulation starts, or after a print starts if `after_print_start`."""
    after_print_start: bool = False
    heater: HeaterId = HeaterId.HOTEND
    """The heater a heater fault strikes."""
    off_for_s: float | None = None
    """How long a power loss or a broker outage lasts; None: the printer stays off."""

    @property
    def on_broker(self) -> bool:
        """Whether this is the broker's fault rather than a printer's."""
        return self.kind is FaultKind.OUTAGE

    def describe(self) -> str:
        """The fault in words, for the log line that says it fired."""
        if self.on_broker:
            return (
                f"broker outage: the embedded broker stops for {self.off_for_s:g} simulated "
                "seconds; every connection drops"
            )
        if self.kind is FaultKind.POWER_LOSS:
            back = (
                "it stays off"
                if self.off_for_s is None
                else f"power returns after {self.off_for_s:g} simulated seconds"
            )
            return f"power-loss on {self.printer_id}: agent and print stop; {back}"
        return f"{self.kind.value} on {self.printer_id}'s {self.heater.value}"

    def when(self) -> str:
        """When the fault fires, in words."""
        after = "the first print starts" if self.after_print_start else "the start"
        return f"{self.at_s:g} simulated seconds after {after}"


def _duration(text: str, spec: str) -> float:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        msg = f"bad time {text!r} in fault {spec!r}: write a number and a unit (s, m, h), e.g. 90s"
        raise ValueError(msg)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _check_broker_fault(spec: str, target: str, kind: FaultKind, *, after_print: bool) -> None:
    if kind is not FaultKind.OUTAGE:
        msg = f"the broker has one fault kind, outage, not {kind.value!r} in {spec!r}"
    elif target != BROKER:
        msg = f"an outage is the broker's fault, not a printer's, in {spec!r}"
    elif after_print:
        msg = f"a broker outage comes at a time after the start, not after a print, in {spec!r}"
    else:
        return
    raise ValueError(f"{msg}: write {BROKER_SYNTAX}")


def parse_fault(spec: str) -> FaultSpec:
    """Parse ``PRINTER:KIND[:ARG]@WHEN`` (see the module's docstring); ValueError says what is
    wrong, with an example."""
    match = _FAULT.fullmatch(spec.strip())
    if match is None:
        raise ValueError(f"cannot read fault {spec!r}: write {FAULT_SYNTAX}")
    try:
        kind = FaultKind(match.group("kind"))
    except ValueError:
        known = ", ".join(kind.value for kind in FaultKind)
        msg = f"unknown fault kind {match.group('kind')!r} in {spec!r}; known: {known}"
        raise ValueError(msg) from None
    when = match.group("when").strip()
    after_print_start = when.startswith("print+")
    at_s = _duration(when.removeprefix("print+"), spec)
    arg = match.group("arg")
    if match.group("printer") == BROKER or kind is FaultKind.OUTAGE:
        _check_broker_fault(spec, match.group("printer"), kind, after_print=after_print_start)
    if kind is FaultKind.OUTAGE:
        down_s = BROKER_OUTAGE_S if arg is None else _duration(arg, spec)
        return FaultSpec(BROKER, kind, at_s, off_for_s=down_s)
    if kind is FaultKind.POWER_LOSS:
        off_for_s = None if arg is None else _duration(arg, spec)
        return FaultSpec(match.group("printer"), kind, at_s, after_print_start, off_for_s=off_for_s)
    heater = HeaterId.HOTEND
    if arg is not None:
        try:
            heater = HeaterId(arg.strip())
        except ValueError:
            heaters = ", ".join(heater.value for heater in HeaterId)
            msg = f"unknown heater {arg!r} in fault {spec!r}; heaters: {heaters}"
            raise ValueError(msg) from None
    return FaultSpec(match.group("printer"), kind, at_s, after_print_start, heater=heater)


def fault_now(printer_id: str, text: str) -> FaultSpec:
    """``KIND[:ARG]`` (a ``--fault`` without its ``@WHEN``, as a ``simulate`` command gives it)
    as a fault on `printer_id` due now; ValueError says what is wrong, with an example."""
    try:
        return parse_fault(f"{printer_id}:{text.strip()}@0s")
    except ValueError:
        known = ", ".join(kind.value for kind in FaultKind)
        msg = (
            f"cannot read fault {text!r}: write KIND[:ARG], e.g. heater-disconnected, "
            f"sensor-open:bed or power-loss:30s; kinds: {known}"
        )
        raise ValueError(msg) from None


def check_fault_printers(
    faults: Iterable[FaultSpec], printer_ids: Iterable[str], *, broker_owned: bool = False
) -> None:
    """ValueError if a fault names a printer that is not simulated, or is a broker outage
    where the broker is not the command's own (``broker_owned``: the demo's embedded one)."""
    faults = list(faults)
    if not broker_owned and any(fault.on_broker for fault in faults):
        msg = (
            "a broker outage needs the demo's own embedded broker: this command connects to "
            "an external broker, which is not its to stop (stop that broker yourself, or use "
            "printfleet chaos run broker-kill)"
        )
        raise ValueError(msg)
    known = set(printer_ids)
    unknown = sorted({fault.printer_id for fault in faults if not fault.on_broker} - known)
    if unknown:
        names = ", ".join(sorted(known))
        msg = f"fault for unknown printer(s) {', '.join(unknown)}; printers: {names}"
        raise ValueError(msg)


class PoweredPrinter:
    """A simulated printer with its agent, behind a power switch that a fault can flip.

    `run()` runs the agent until cancelled. `power_off()` stops the agent and the printer at
    once; `power_on()` starts the printer again with a fresh agent read from the same journal.
    """

    __slots__ = ("_config", "_make_agent", "_outages", "_powered", "_task", "agent", "hardware")

    def __init__(
        self,
        hardware: SimulatedPrinter,
        config: AgentConfig,
        make_agent: Callable[[AgentConfig, SimulatedPrinter], PrinterAgent] = PrinterAgent,
    ) -> None:
        self.hardware = hardware
        self._config = config
        self._make_agent = make_agent
        self.agent = make_agent(config, hardware)
        self._powered = asyncio.Event()
        self._powered.set()
        self._task: asyncio.Task[None] | None = None
        self._outages: set[asyncio.Task[None]] = set()
        # A `simulate` command's power loss reaches the switch through the printer.
        hardware.power_switch = self._outage

    def _outage(self, off_for_s: float | None) -> None:
        """Cut the power soon, in a task of its own: the agent that asked is among what stops."""
        outage = asyncio.get_running_loop().create_task(
            self.outage(off_for_s), name=f"power loss {self.printer_id}"
        )
        self._outages.add(outage)
        outage.add_done_callback(self._outages.discard)

    async def outage(self, off_for_s: float | None) -> None:
        """Cut the power, and restore it after `off_for_s` simulated seconds (None: never)."""
        await self.power_off()
        if off_for_s is None:
            return
        await self.hardware.clock.sleep(off_for_s)
        await self.power_on()
        log.warning("power restored: %s starts again from its journal", self.printer_id)

    @property
    def printer_id(self) -> str:
        """The printer's id."""
        return self._config.printer_id

    @property
    def powered(self) -> bool:
        """Whether the printer has power."""
        return self._powered.is_set()

    async def run(self) -> None:
        """Run the agent, and again with a fresh one each time the power returns."""
        current = asyncio.current_task()
        while True:
            await self._powered.wait()
            self._task = asyncio.create_task(self.agent.run(), name=f"agent {self.printer_id}")
            try:
                await self._task
            except asyncio.CancelledError:
                if current is not None and current.cancelling():
                    raise
                # The power was cut: wait for it to return.
            else:
                return

    async def power_off(self) -> None:
        """Cut the power: the agent stops mid-step, a print fails, the heaters go cold.

        Nothing happens to a printer that is already off (two power losses may overlap)."""
        if not self.powered:
            return
        self._powered.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hardware.__aexit__(None, None, None)

    async def power_on(self) -> None:
        """Restore the power: the printer starts, and a fresh agent reads the journal.

        Nothing happens to a printer that is already on."""
        if self.powered:
            return
        await self.hardware.__aenter__()
        self.agent = self._make_agent(self._config, self.hardware)
        self._powered.set()


async def _wait_until(fault: FaultSpec, unit: PoweredPrinter) -> None:
    clock = unit.hardware.clock
    if fault.after_print_start:
        await unit.hardware.wait_for_print()
        await clock.sleep(fault.at_s)
    else:
        await clock.sleep(fault.at_s - clock.now())


async def _inject(fault: FaultSpec, unit: PoweredPrinter) -> None:
    await _wait_until(fault, unit)
    log.warning("fault injected: %s", fault.describe())
    if fault.kind is not FaultKind.POWER_LOSS:
        unit.hardware.inject_fault(fault.heater, HEATER_FAULTS[fault.kind])
        return
    await unit.outage(fault.off_for_s)


class BrokerSwitch(Protocol):
    """A broker the simulation owns and may stop and start again (the demo's embedded one)."""

    async def stop(self) -> None:
        """Stop the broker: every connection drops."""

    async def start(self) -> None:
        """Start it again where it listened before."""


async def _broker_outage(fault: FaultSpec, broker: BrokerSwitch, clock: SimClock) -> None:
    await clock.sleep(fault.at_s - clock.now())
    await broker.stop()
    log.warning("fault injected: %s", fault.describe())
    await clock.sleep(fault.off_for_s or 0.0)
    await broker.start()
    log.warning("broker back: the embedded broker listens again; everything reconnects")


async def run_faults(
    faults: Iterable[FaultSpec],
    units: Mapping[str, PoweredPrinter],
    *,
    broker: BrokerSwitch | None = None,
    clock: SimClock | None = None,
) -> None:
    """Inject each fault when it is due; returns once all have fired. A broker outage needs
    the `broker` to stop and start and the `clock` its times are on; without them it is
    refused (ValueError)."""
    faults = list(faults)
    check_fault_printers(faults, units, broker_owned=broker is not None and clock is not None)
    async with asyncio.TaskGroup() as group:
        for fault in faults:
            if fault.on_broker and broker is not None and clock is not None:
                group.create_task(_broker_outage(fault, broker, clock), name=fault.describe())
            else:
                group.create_task(_inject(fault, units[fault.printer_id]), name=fault.describe())
