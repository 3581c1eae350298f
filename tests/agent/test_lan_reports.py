"""LAN mode against a real Mosquitto, with a peer playing the cloud: a LAN-only printer refuses
cloud commands, and local prints are reported from the journal, across restarts, until the
cloud acknowledges them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.agent.peer import CloudPeer, cloud_now, connected_peer, running_agent
from tests.agent.test_lan_api import CODE, gcode, lan_agent, lan_config, off_loop, status_until

from printfleet.agent.config import AgentConfig
from printfleet.broker_address import BrokerAddress
from printfleet.client.lan import LanClient
from printfleet.protocol.messages import LocalJobEvent, StartSource
from printfleet.protocol.reasons import Reason
from printfleet.sim import SimulatedPrinter
from printfleet.testing import MosquittoBroker

TIME_SCALE = 40.0


@pytest.mark.asyncio
async def test_a_lan_only_printer_refuses_cloud_starts_and_still_prints_over_the_lan(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with connected_peer(BrokerAddress.parse(mosquitto.url)) as peer:
        config = lan_config(
            tmp_path / "agent", printer_id="lan-only-x1", broker=mosquitto.url, mode="lan-only"
        ).model_copy(update={"cloud_public_key": peer.public_key})
        async with (
            SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim,
            running_agent(config, sim) as (agent, _),
        ):
            state = await peer.state(config.printer_id)
            assert state.body.cloud_enabled is False
            await peer.synced(config.printer_id)
            await sim.storage.write("cube.gcode", gcode())
            now = cloud_now()
            start = peer.issuer.start(
                config.printer_id,
                "018f0000-0000-7000-8000-000000000001",
                now=now,
                not_after=now + 30_000,
                sha256="ab" * 32,
                name="cube.gcode",
            )
            await peer.refused(start, Reason.CLOUD_DISABLED)
            # Even a remote plate confirmation: the cloud has no say over this printer.
            confirm = peer.issuer.confirm_plate(config.printer_id, now=cloud_now(), by="remote")
            await peer.refused(confirm, Reason.CLOUD_DISABLED)
            assert sim.current_print() is None
            assert agent.lan_address is not None
            with LanClient(f"127.0.0.1:{agent.lan_address[1]}", CODE) as client:
                assert (await off_loop(client.status)).mode == "lan-only"
                job = await off_loop(lambda: client.print_file("cube.gcode"))
                await status_until(client, lambda s: s.status == "idle")
            # Its report still reaches the cloud: LAN-only refuses orders, not history.
            report = await peer.event(
                config.printer_id, LocalJobEvent, lambda e: e.job_id == job.job_id
            )
            assert report.body.source is StartSource.LAN


@pytest.mark.asyncio
async def test_local_prints_are_reported_across_restarts_until_acknowledged(
    fresh_mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    fresh_mosquitto.stop()  # the printer works alone first
    broker = BrokerAddress.parse(fresh_mosquitto.url)
    config = lan_config(
        tmp_path / "agent", printer_id="lan-reports", broker=fresh_mosquitto.url
    ).model_copy(update={"report_retry_s": 0.3})
    async with SimulatedPrinter("x1", storage_dir=tmp_path / "sd", time_scale=TIME_SCALE) as sim:
        await sim.storage.write("cube.gcode", gcode())
        async with lan_agent(config, sim) as agent:
            assert agent.lan_address is not None
            with LanClient(f"127.0.0.1:{agent.lan_address[1]}", CODE) as client:
                job = await off_loop(lambda: client.print_file("cube.gcode"))
                await status_until(client, lambda s: s.status == "idle")
        # Restarted (a power cycle): the report is still owed, from the journal.
        fresh_mosquitto.start()
        async with (
            connected_peer(broker) as peer,
            running_agent(trusting(config, peer), sim) as (agent, _),
        ):
            first = await peer.event(config.printer_id, LocalJobEvent)
            assert first.job_id == job.job_id
            assert first.body.outcome.value == "completed"
            assert first.body.name == "cube.gcode"
            # Not acknowledged: sent again, while the printer stays connected.
            since = peer.mark()
            await peer.event(config.printer_id, LocalJobEvent, since=since)
            ack = peer.issuer.local_job_ack(config.printer_id, (job.job_id,), now=cloud_now())
            await peer.send(ack)
            async with asyncio.timeout(10):
                while agent.core.journal.unacknowledged_reports():  # noqa: ASYNC110 - no signal
                    await asyncio.sleep(0.02)
        # Another restart: nothing is owed any more.
        async with (
            connected_peer(broker) as peer,
            running_agent(trusting(config, peer), sim) as (agent, _),
        ):
            since = peer.mark()
            await peer.state(config.printer_id, since=since)
            # Several report intervals later, still nothing.
            await asyncio.sleep(config.report_retry_s * 3)  # an absence takes time to show
            reports = [e for e in peer.events_of(config.printer_id) if isinstance(e, LocalJobEvent)]
            assert reports == []


def trusting(config: AgentConfig, peer: CloudPeer) -> AgentConfig:
    """``config`` pinning ``peer``'s key (each peer signs with a key of its own)."""
    return config.model_copy(update={"cloud_public_key": peer.public_key})
