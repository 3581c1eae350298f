"""Many simulated printers, each behind its own agent and broker connection, in one process.

``printfleet sim`` runs this. Against a bare broker the printers announce presence and publish
telemetry on the documented topics, so the simulator is useful without any cloud.
"""

import asyncio
import contextlib
import gc
import logging
import resource
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import Loadout
from printfleet.sim.clock import SimClock
from printfleet.sim.faults import FaultSpec, PoweredPrinter, check_fault_printers, run_faults
from printfleet.sim.materials import (
    MaterialSpec,
    check_material_printers,
    default_loadout,
    with_materials,
)
from printfleet.sim.plate import check_eject_printers
from printfleet.sim.printer import EJECT_S, MODELS, SimulatedPrinter

log = logging.getLogger(__name__)

GC_GEN0_THRESHOLD = 10_000
"""The fleet's first-generation GC threshold (CPython's default is 700); see `fewer_collections`."""


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """What to simulate."""

    printers: int
    models: Sequence[str]
    broker: str
    data_dir: Path
    cloud_public_key: str | None = None
    time_scale: float = 1.0
    telemetry_period_s: float = 1.0
    topic_prefix: str = "printfleet/v1"
    id_prefix: str = "sim"
    username: str | None = None
    password: str | None = None
    attendant_after_s: float | None = None
    """Simulated seconds after each print's end until a person clears the plate; None: never."""
    faults: Sequence[FaultSpec] = ()
    """Faults to inject into the fleet's printers (see `printfleet.sim.faults`)."""
    materials: Sequence[MaterialSpec] = ()
    """What slots hold at power-on, over each model's default (PLA in slot 1, a 0.4 mm nozzle)."""
    auto_eject: Sequence[str] = ()
    """Printers that clear their own plate: an eject mechanism, and agents configured
    ``plate_clearing = "auto_eject"``."""

    def printer_ids(self) -> list[tuple[str, str]]:
        """(printer id, model) for every printer, models taken in turn."""
        return [
            (
                f"{self.id_prefix}-{self.models[i % len(self.models)]}-{i:04d}",
                self.models[i % len(self.models)],
            )
            for i in range(self.printers)
        ]

    def loadouts(self) -> dict[str, Loadout]:
        """What each printer has loaded at power-on; ValueError for a material naming a printer
        or a slot the fleet does not have."""
        plan = self.printer_ids()
        check_material_printers(self.materials, (printer_id for printer_id, _ in plan))
        return {
            printer_id: with_materials(
                default_loadout(MODELS[model].material_slots), printer_id, self.materials
            )
            for printer_id, model in plan
        }


def raise_open_file_limit(wanted: int) -> None:
    """Raise this process's soft limit on open files towards ``wanted`` (never above the hard one).

    One socket per printer: a thousand printers need more than the usual 1024 descriptors, and so
    does a broker started by this process to serve them (children inherit the limit).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextlib.contextmanager
def fewer_collections(gen0_threshold: int = GC_GEN0_THRESHOLD) -> Iterator[None]:
    """Run the cyclic garbage collector less often while the fleet runs, then restore it.

    Almost everything an idle fleet allocates (timer handles, futures, messages) is freed by
    reference counting within a second. With the default threshold a thousand printers still
    triggered a collection every ~25 ms, which promoted those in-flight objects until full
    collections walked the whole fleet (~0.2 s each, stalling every printer): 28 % of the fleet's
    CPU, measured with ``gc.callbacks`` (``printfleet bench fleet`` shows the result).
    """
    saved = gc.get_threshold()
    gc.set_threshold(gen0_threshold, *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


async def run_fleet(spec: FleetSpec, *, started: asyncio.Event | None = None) -> None:
    """Run every printer until cancelled; ``started`` is set when all have connected once."""
    check_fault_printers(spec.faults, (printer_id for printer_id, _ in spec.printer_ids()))
    check_eject_printers(spec.auto_eject, (printer_id for printer_id, _ in spec.printer_ids()))
    loadouts = spec.loadouts()
    raise_open_file_limit(spec.printers * 4 + 256)
    clock = SimClock(spec.time_scale)
    units: list[PoweredPrinter] = []
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(fewer_collections())
        for printer_id, model in spec.printer_ids():
            home = spec.data_dir / printer_id
            ejects = printer_id in spec.auto_eject
            printer = SimulatedPrinter(
                model,
                storage_dir=home / "sd",
                clock=clock,
                name=printer_id,
                attendant_after_s=spec.attendant_after_s,
                loadout=loadouts[printer_id],
                eject_s=EJECT_S if ejects else None,
            )
            await stack.enter_async_context(printer)
            config = AgentConfig(
                printer_id=printer_id,
                model=model,
                broker=spec.broker,
                username=spec.username,
                password=spec.password,
                topic_prefix=spec.topic_prefix,
                cloud_public_key=spec.cloud_public_key,
                data_dir=home,
                telemetry_period_s=spec.telemetry_period_s,
                plate_clearing="auto_eject" if ejects else "person",
            )
            units.append(PoweredPrinter(printer, config))
        async with asyncio.TaskGroup() as group:
            for unit in units:
                group.create_task(unit.run(), name=f"printer {unit.printer_id}")
            if spec.faults:
                by_id = {unit.printer_id: unit for unit in units}
                group.create_task(run_faults(spec.faults, by_id), name="faults")
            await asyncio.gather(*(unit.agent.ready.wait() for unit in units))
            # `printfleet bench fleet` waits for this line: keep "simulated printers connected".
            log.info("%d simulated printers connected to %s", len(units), spec.broker)
            if started is not None:
                started.set()
            # Run until cancelled even with no printers: an empty fleet is the baseline that the
            # fleet benchmark subtracts, and it must cost what the process itself costs.
            await asyncio.Event().wait()
