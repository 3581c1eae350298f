"""The cloud's dispatcher and a real printer agent, through a real Mosquitto: a job's whole life.

The store here is an in-memory stand-in with the real store's compare-and-set rule; everything
else is real: the link supervisor's probes, signed commands, the agent's gate and journal, a
simulated printer fetching its file over HTTP.
"""

import asyncio
import contextlib
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from printfleet.agent.config import AgentConfig
from printfleet.agent.runtime import PrinterAgent, new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.dispatch.dispatcher import StoredJob, cloud_ms
from printfleet.protocol.dispatch import JobChange, JobView
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.messages import JournalStatus, encode
from printfleet.protocol.signing import CommandSigner
from printfleet.sim.printer import SimulatedPrinter
from printfleet.sim.samples import make_sample_gcode
from printfleet.testing import MosquittoBroker
from printfleet.testing.jobs import MemoryJobs
from printfleet.testing.roster import MemoryRoster

GCODE = make_sample_gcode(3, heat=False).encode()


@pytest.fixture
def file_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(GCODE)))
            self.end_headers()
            self.wfile.write(GCODE)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class World:
    jobs: MemoryJobs
    cloud: CloudCore
    issuer: CommandIssuer
    notices: list[JobChange]
    printer_id: str
    signer: CommandSigner

    def submit(self, window_ms: int = 120_000) -> str:
        now = cloud_ms()
        job_id = str(uuid.uuid4())
        view = JobView(
            id=job_id,
            created_at=now,
            start_by=now + window_ms,
            state=JobState.QUEUED,
            sha256=hashlib.sha256(GCODE).hexdigest(),
            submitter="alice",
            printer_id=self.printer_id,
        )
        self.jobs.add(StoredJob(view, 0, "alice", "cube.gcode", len(GCODE)))
        self.cloud.dispatcher.wake()
        return job_id


@contextlib.asynccontextmanager
async def background(coroutine: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    task = asyncio.ensure_future(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def cloud_world(broker: MosquittoBroker, file_server: str) -> AsyncIterator[World]:
    signer = CommandSigner.generate()
    issuer = CommandIssuer(signer, new_message_id)
    jobs = MemoryJobs()
    notices: list[JobChange] = []

    async def on_change(change: JobChange, job: StoredJob) -> None:
        notices.append(change)

    printer_id = f"e2e-{uuid.uuid4().hex[:8]}"
    roster = MemoryRoster()
    roster.add(printer_id, "p1", "alice")
    cloud = CloudCore(
        BrokerAddress.parse(broker.url),
        jobs,
        issuer,
        roster=roster,
        file_url=lambda job, printer: f"{file_server}/{job.view.id}",
        on_change=on_change,
        probe_interval_s=1.0,
    )
    world = World(jobs, cloud, issuer, notices, printer_id, signer)
    async with background(cloud.run()):
        async with asyncio.timeout(10):
            await cloud.link.wait_verified()
        yield world


@contextlib.asynccontextmanager
async def printer_online(
    world: World, broker: MosquittoBroker, home: Path, model: str = "p1"
) -> AsyncIterator[tuple[PrinterAgent, SimulatedPrinter]]:
    signer = world.signer
    config = AgentConfig(
        printer_id=world.printer_id,
        model=model,
        broker=broker.url,
        cloud_public_key=signer.public_key,
        data_dir=home,
        telemetry_period_s=0.2,
    )
    async with SimulatedPrinter(model, storage_dir=home / "sd", time_scale=20) as hardware:
        agent = PrinterAgent(config, hardware)
        async with background(agent.run()):
            async with asyncio.timeout(15):
                await agent.ready.wait()
                # Dispatch waits for a synced printer clock: the cloud answered its time request.
                while True:
                    view = world.cloud.fleet.view(world.printer_id)
                    if view is not None and view.clock_synced:
                        break
                    await asyncio.sleep(0.05)
            yield agent, hardware


@pytest.mark.asyncio
async def test_a_job_runs_from_submission_to_completion(
    mosquitto: MosquittoBroker, file_server: str, tmp_path: Path
) -> None:
    async with (
        cloud_world(mosquitto, file_server) as world,
        printer_online(world, mosquitto, tmp_path) as (agent, hardware),
    ):
        job_id = world.submit()
        # A p1 has no plate sensor: the job is staged, then waits for a person.
        await world.jobs.wait_for_state(job_id, JobState.STAGED, within=15)
        # Several planning rounds with the file staged: nothing may start unconfirmed.
        async with asyncio.timeout(10):
            await world.cloud.dispatcher.wait_ticks(3)
        assert world.jobs.rows[job_id].view.state is JobState.STAGED
        assert hardware.current_print() is None
        confirm = world.issuer.confirm_plate(world.printer_id, now=cloud_ms(), by="alice")
        await world.cloud.link.publish(
            world.cloud.topics.commands(world.printer_id), encode(confirm)
        )
        await world.jobs.wait_for_state(job_id, JobState.COMPLETED, within=30)
    assert world.jobs.history[job_id] == [
        JobState.QUEUED,
        JobState.STAGED,
        JobState.DISPATCHED,
        JobState.PRINTING,
        JobState.COMPLETED,
    ]
    assert ("start:sent", job_id) in {(a, j) for a, j, _ in world.jobs.audit_log}
    assert agent.core.journal.job_status(job_id) is JournalStatus.COMPLETED


@pytest.mark.asyncio
async def test_a_job_whose_window_passes_while_the_printer_is_offline_expires_for_good(
    mosquitto: MosquittoBroker, file_server: str, tmp_path: Path
) -> None:
    async with cloud_world(mosquitto, file_server) as world:
        job_id = world.submit(window_ms=1_500)
        await world.jobs.wait_for_state(job_id, JobState.EXPIRED, within=10)
        expired = [n for n in world.notices if n.job.id == job_id]
        assert expired[-1].job.state is JobState.EXPIRED
        assert expired[-1].notify
        # The printer comes online afterwards: nothing pending is sent to it.
        async with printer_online(world, mosquitto, tmp_path, model="x1") as (agent, hardware):
            # Several planning rounds with a ready printer and a fresh view of it.
            async with asyncio.timeout(10):
                await world.cloud.dispatcher.wait_ticks(3)
            assert hardware.current_print() is None
            assert agent.core.journal.job_status(job_id) is JournalStatus.UNKNOWN
    assert [action for action, job, _ in world.jobs.audit_log if job == job_id] == []
