"""The cloud's MQTT side in a process of its own, so the harness can ``kill -9`` it for real.

``python -m printfleet.chaos.cloud_process CONFIG.json`` runs a :class:`ChaosCloud` on the real
store, writes its history to its own JSON-lines file, prints ``ready`` once both MQTT clients
have round-trip evidence and every printer reports a synced clock, and runs until killed. Armed
with ``crash_at_dispatch``, it SIGKILLs itself right after it records its first start as
dispatched and before it publishes it: the crash a cloud must recover from by the store alone.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from printfleet.agent.runtime import new_message_id
from printfleet.broker_address import BrokerAddress
from printfleet.chaos.recorder import HistoryRecorder, Kind, RecordedEvent, load_history
from printfleet.chaos.world_cloud import ChaosCloud
from printfleet.chaos.world_settings import WorldSettings
from printfleet.chaos.world_store import DispatchPoint
from printfleet.cloud.dispatch.dispatcher import cloud_ms, stage_name
from printfleet.cloud.dispatch.store_jobs import StoreJobs, StoreRoster
from printfleet.cloud.store import open_store
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import encode
from printfleet.protocol.signing import CommandSigner

READY = "ready"
FRESH_REPORT_MS = 2_000


@dataclass(frozen=True, slots=True)
class CloudProcessConfig:
    """Everything the child needs (written as JSON for it)."""

    inbound_url: str
    outbound_url: str
    database_url: str
    signing_key_hex: str
    files_url: str
    history: str
    printers: list[str]
    confirm_plates: list[str]
    dispatch_window_ms: int
    probe_interval_s: float
    safeguards: bool
    crash_at_dispatch: bool


class CloudProcess:
    """One child cloud: start it, wait until it is ready, kill it, read what it recorded."""

    def __init__(self, config: CloudProcessConfig, directory: Path) -> None:
        self.config = config
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *, within: float = 30.0) -> None:
        """Start the child and wait for its ``ready``; RuntimeError if it never comes."""
        path = self.directory / f"cloud-{os.getpid()}-{id(self)}.json"
        await asyncio.to_thread(path.write_text, json.dumps(asdict(self.config)))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "printfleet.chaos.cloud_process",
            str(path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.process.stdout is not None  # noqa: S101 - piped just above
        try:
            async with asyncio.timeout(within):
                while (line := await self.process.stdout.readline()) != b"":
                    if line.strip() == READY.encode():
                        return
        except TimeoutError:
            pass
        await self.kill()
        msg = f"the cloud process did not become ready within {within:g} s"
        raise RuntimeError(msg)

    async def wait_exit(self) -> int:
        """Wait for the child to end by itself; its return code (-9 after a SIGKILL)."""
        assert self.process is not None  # noqa: S101 - started first
        return await self.process.wait()

    async def kill(self) -> None:
        """SIGKILL the child (if it still runs) and reap it."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    def events(self) -> list[RecordedEvent]:
        """What the child recorded (all of it: every line is flushed as it is written)."""
        path = Path(self.config.history)
        return load_history(path) if path.exists() else []


async def _serve(config: CloudProcessConfig) -> None:
    signer = CommandSigner.from_private_bytes(bytes.fromhex(config.signing_key_hex))
    issuer = CommandIssuer(signer, new_message_id)
    settings = WorldSettings(
        safeguards=config.safeguards,
        probe_interval_s=config.probe_interval_s,
        dispatch_window_ms=config.dispatch_window_ms,
    )
    with HistoryRecorder(Path(config.history)) as recorder:
        store = await open_store(config.database_url)
        point = DispatchPoint(StoreJobs(store))
        if config.crash_at_dispatch:

            def crash(job: JobView) -> None:
                recorder.record(Kind.FAULT_INJECTED, fault="cloud process killed (SIGKILL)")
                os.kill(os.getpid(), signal.SIGKILL)

            point.armed = crash
        cloud = ChaosCloud(
            BrokerAddress.parse(config.inbound_url),
            BrokerAddress.parse(config.outbound_url),
            point,
            issuer,
            roster=StoreRoster(store),
            file_url=lambda job, printer_id: f"{config.files_url}/{stage_name(job.view.id)}",
            recorder=recorder,
            settings=settings,
        )
        task = asyncio.create_task(cloud.run(), name="chaos cloud process")
        # Readiness is the broker's and the agents' doing, seen through the fleet view: polled.
        while not _ready(cloud, config.printers):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for printer_id in config.confirm_plates:
            confirm = issuer.confirm_plate(printer_id, now=cloud_ms(), by="user")
            link = cloud.link_out
            outcome = await link.publish(link.topics.commands(printer_id), encode(confirm))
            recorder.record(
                Kind.PLATE_CONFIRMED, printer_id=printer_id, where="remote", outcome=outcome.value
            )
        print(READY, flush=True)  # noqa: T201 - the parent reads this line
        await task


def _ready(cloud: ChaosCloud, printers: list[str]) -> bool:
    if not (cloud.link_in.verified() and cloud.link_out.verified()):
        return False
    now = cloud_ms()
    for printer_id in printers:
        view = cloud.fleet.view(printer_id)
        if view is None or not view.clock_synced or now - view.reported_at > FRESH_REPORT_MS:
            return False
    return True


def main() -> None:
    """Entry point: one argument, the config file."""
    config = CloudProcessConfig(**json.loads(Path(sys.argv[1]).read_text()))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))


if __name__ == "__main__":
    main()
