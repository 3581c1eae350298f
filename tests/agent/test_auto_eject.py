"""Printers that clear their own plate (``plate_clearing = "auto_eject"``), against a real
Mosquitto and the simulated printer's eject routine.

A `CloudPeer` plays the cloud; the agent's gate is the real one, so a start is accepted only on
the evidence the eject left behind: a local plate confirmation by "auto-eject".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from tests.agent.peer import (
    CloudPeer,
    FileServer,
    StagedFile,
    cloud_now,
    connected_peer,
    running_agent,
)
from tests.agent.test_runtime import (
    config_for,
    confirm_plate,
    new_printer_id,
    stage,
    start_of,
)

from printfleet.agent.config import AgentConfig
from printfleet.agent.hardware import PrintOutcomeKind
from printfleet.agent.runtime import AUTO_EJECT, PLATE_PROMPT_ID, new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.protocol.messages import (
    AlertEvent,
    JobEndedEvent,
    JobOutcome,
    JobStartedEvent,
    PlateStatus,
)
from printfleet.protocol.reasons import Reason
from printfleet.sim import SimulatedPrinter, make_sample_gcode
from printfleet.testing import MosquittoBroker

TIME_SCALE = 50.0
EJECT_S = 20.0
"""Simulated seconds the eject routine takes: 0.4 s of real time at the tests' scale."""
PRINT_WAIT_S = 30.0


class EjectingPrinter(SimulatedPrinter):
    """A simulated printer with an eject mechanism that counts the ejects asked of it."""

    def __init__(self, model: str, *, storage_dir: Path, eject_s: float | None = EJECT_S) -> None:
        super().__init__(
            model,
            storage_dir=storage_dir,
            time_scale=TIME_SCALE,
            watchdog_timeout=None,
            eject_s=eject_s,
        )
        self.ejects_asked = 0

    async def eject_print(self) -> bool:
        """Count, then eject."""
        self.ejects_asked += 1
        return await super().eject_print()


@pytest_asyncio.fixture
async def peer(mosquitto: MosquittoBroker) -> AsyncIterator[CloudPeer]:
    """The cloud's side, on the suite's shared broker."""
    async with connected_peer(BrokerAddress.parse(mosquitto.url)) as cloud:
        yield cloud


@pytest.fixture
def files() -> Iterator[FileServer]:
    """A real HTTP server for staged files."""
    with FileServer() as server:
        yield server


def auto_eject(config: AgentConfig) -> AgentConfig:
    """The same config, on a printer that clears its own plate."""
    return config.model_copy(update={"plate_clearing": "auto_eject"})


async def print_one(
    peer: CloudPeer, pid: str, cube: StagedFile, *, cancel: bool = False
) -> tuple[str, int]:
    """Stage and start a job, let it end (cancelled at once if asked); the job and the cursor
    taken before it started."""
    job = new_message_id()
    await stage(peer, pid, job, cube)
    since = peer.mark()
    await peer.accepted(start_of(peer, pid, job, cube))
    await peer.event(pid, JobStartedEvent, lambda e: e.job_id == job, since=since)
    if cancel:
        await peer.accepted(peer.issuer.cancel(pid, job, now=cloud_now()))
    ended = await peer.event(
        pid, JobEndedEvent, lambda e: e.job_id == job, since=since, wait_s=PRINT_WAIT_S
    )
    expected = JobOutcome.CANCELLED if cancel else JobOutcome.COMPLETED
    assert ended.body.outcome is expected, ended.body
    return job, since


@pytest.mark.asyncio
async def test_an_auto_eject_printer_prints_two_jobs_in_a_row_untouched(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """After a completed print the printer ejects it and confirms its own plate, as
    "auto-eject": the next start is accepted on that evidence, nobody touching the printer."""
    pid = new_printer_id("p1")
    cube = files.add("cube.gcode", make_sample_gcode(3, hotend_c=40.0, bed_c=0.0).encode())
    config = auto_eject(config_for(peer, mosquitto.url, tmp_path / "agent", pid))
    printer = EjectingPrinter("p1", storage_dir=tmp_path / "sd")
    async with printer, running_agent(config, printer) as (agent, _):
        await peer.synced(pid)
        # A fresh printer knows nothing of its plate: the first print needs a person's word.
        await peer.accepted(confirm_plate(peer, pid))
        _, since = await print_one(peer, pid, cube)

        ejected = await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "plate_ejected", since=since, wait_s=10
        )
        assert AUTO_EJECT in ejected.body.message
        await peer.state(pid, lambda s: s.body.plate is PlateStatus.CLEAR, since=since)
        assert printer.ejects_asked == 1
        assert not printer.plate.occupied
        assert PLATE_PROMPT_ID not in printer.screen.open_prompts
        # The evidence the next start is judged on: the eject's own confirmation.
        confirmation = agent.core.state.confirmation
        assert confirmation is not None
        assert (confirmation.by, confirmation.remote) == (AUTO_EJECT, False)

        _, since = await print_one(peer, pid, cube)
        await peer.event(pid, AlertEvent, lambda e: e.body.kind == "plate_ejected", since=since)
        assert printer.ejects_asked == 2
    assert printer.plate.prints_on_occupied_plate == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("ending", ["cancelled", "failed"])
async def test_after_a_print_that_did_not_complete_the_plate_waits_for_a_person(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path, ending: str
) -> None:
    """A cancelled or failed print may have left spaghetti or a half-stuck part: no eject, and
    the next start is refused until a person confirms the plate."""
    pid = new_printer_id("p1")
    cube = files.add("cube.gcode", make_sample_gcode(40, hotend_c=40.0, bed_c=0.0).encode())
    config = auto_eject(config_for(peer, mosquitto.url, tmp_path / "agent", pid))
    printer = EjectingPrinter("p1", storage_dir=tmp_path / "sd")
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        await peer.accepted(confirm_plate(peer, pid))
        job = new_message_id()
        await stage(peer, pid, job, cube)
        since = peer.mark()
        await peer.accepted(start_of(peer, pid, job, cube))
        await peer.event(pid, JobStartedEvent, lambda e: e.job_id == job, since=since)
        handle = printer.current_print()
        assert handle is not None
        # Something is on the plate before the print ends: what a person must look at.
        await handle.wait_until(lambda _: printer.plate.occupied)
        if ending == "cancelled":
            await peer.accepted(peer.issuer.cancel(pid, job, now=cloud_now()))
        else:
            handle.abort(PrintOutcomeKind.FAILED, "the part came loose")
        ended = await peer.event(
            pid, JobEndedEvent, lambda e: e.job_id == job, since=since, wait_s=PRINT_WAIT_S
        )
        assert ended.body.outcome is JobOutcome(ending), ended.body
        await peer.state(pid, lambda s: s.body.plate is PlateStatus.NEEDS_CONFIRMATION, since=since)

        second = new_message_id()
        await stage(peer, pid, second, cube)
        await peer.refused(start_of(peer, pid, second, cube), Reason.PLATE_UNCONFIRMED)
        assert printer.ejects_asked == 0
        assert printer.plate.occupied
        assert PLATE_PROMPT_ID in printer.screen.open_prompts
        kinds = {e.body.kind for e in peer.events_of(pid, since) if isinstance(e, AlertEvent)}
        assert not kinds & {"plate_ejected", "plate_eject_failed"}, kinds


@pytest.mark.asyncio
async def test_a_failing_eject_raises_an_alert_and_leaves_the_plate_unconfirmed(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """A jammed mechanism: the plate stays unconfirmed, a person is asked, nothing starts."""
    pid = new_printer_id("p1")
    cube = files.add("cube.gcode", make_sample_gcode(3, hotend_c=40.0, bed_c=0.0).encode())
    config = auto_eject(config_for(peer, mosquitto.url, tmp_path / "agent", pid))
    printer = EjectingPrinter("p1", storage_dir=tmp_path / "sd")
    printer.jam_ejector()
    async with printer, running_agent(config, printer) as (agent, _):
        await peer.synced(pid)
        await peer.accepted(confirm_plate(peer, pid))
        _, since = await print_one(peer, pid, cube)

        failed = await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "plate_eject_failed", since=since, wait_s=10
        )
        assert failed.body.severity == "warning"
        assert failed.body.message.startswith(
            f"{pid} could not eject its print: clear the plate and confirm it"
        )
        assert printer.ejects_asked == 1
        assert printer.plate.occupied
        assert agent.core.state.confirmation is None
        assert PLATE_PROMPT_ID in printer.screen.open_prompts
        second = new_message_id()
        await stage(peer, pid, second, cube)
        await peer.refused(start_of(peer, pid, second, cube), Reason.PLATE_UNCONFIRMED)


@pytest.mark.asyncio
async def test_an_auto_eject_printer_without_the_mechanism_asks_for_a_person(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Configured auto_eject on hardware that cannot eject: the same alert, naming why."""
    pid = new_printer_id("p1")
    cube = files.add("cube.gcode", make_sample_gcode(3, hotend_c=40.0, bed_c=0.0).encode())
    config = auto_eject(config_for(peer, mosquitto.url, tmp_path / "agent", pid))
    printer = EjectingPrinter("p1", storage_dir=tmp_path / "sd", eject_s=None)
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        await peer.accepted(confirm_plate(peer, pid))
        _, since = await print_one(peer, pid, cube)
        failed = await peer.event(
            pid, AlertEvent, lambda e: e.body.kind == "plate_eject_failed", since=since, wait_s=10
        )
        assert "no eject mechanism" in failed.body.message
        assert printer.plate.occupied


@pytest.mark.asyncio
async def test_a_printer_configured_person_never_ejects(
    peer: CloudPeer, files: FileServer, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The default: a mechanism on the printer is not used unless the installer said so."""
    pid = new_printer_id("p1")
    cube = files.add("cube.gcode", make_sample_gcode(3, hotend_c=40.0, bed_c=0.0).encode())
    config = config_for(peer, mosquitto.url, tmp_path / "agent", pid)
    assert config.plate_clearing == "person"
    printer = EjectingPrinter("p1", storage_dir=tmp_path / "sd")
    async with printer, running_agent(config, printer):
        await peer.synced(pid)
        await peer.accepted(confirm_plate(peer, pid))
        _, since = await print_one(peer, pid, cube)
        await peer.state(pid, lambda s: s.body.plate is PlateStatus.NEEDS_CONFIRMATION, since=since)
        second = new_message_id()
        await stage(peer, pid, second, cube)
        await peer.refused(start_of(peer, pid, second, cube), Reason.PLATE_UNCONFIRMED)
        assert printer.ejects_asked == 0
        assert printer.plate.occupied


def test_plate_clearing_is_person_or_auto_eject() -> None:
    """A config names one of the two; anything else is refused when the file is read."""
    config = AgentConfig(printer_id="p1-01")
    assert config.plate_clearing == "person"
    assert AgentConfig(printer_id="p1-01", plate_clearing="auto_eject").plate_clearing == (
        "auto_eject"
    )
    with pytest.raises(ValueError, match="plate_clearing"):
        AgentConfig.model_validate({"printer_id": "p1-01", "plate_clearing": "robot"})
