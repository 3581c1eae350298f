"""The cloud of a chaos world: its MQTT side with two clients, one fleet view, one dispatcher, all
production code.
"""

import asyncio
import logging
from collections.abc import Callable

from printfleet.broker_address import BrokerAddress
from printfleet.chaos.recorder import DispatchHistory, HistoryRecorder, Kind
from printfleet.chaos.unsafe import CredulousLink, plan_without_safeguards
from printfleet.chaos.world_settings import WorldSettings
from printfleet.chaos.world_store import DispatchPoint
from printfleet.cloud.dispatch.dispatcher import Dispatcher, PrinterRoster, StoredJob, cloud_ms
from printfleet.cloud.dispatch.fleet_view import FleetView
from printfleet.cloud.dispatch.fleet_view import Kind as MessageKind
from printfleet.cloud.dispatch.link import LinkSupervisor
from printfleet.protocol.dispatch import DispatchPolicy, JobChange, plan
from printfleet.protocol.issuer import CommandIssuer

log = logging.getLogger(__name__)


class ChaosCloud:
    """The cloud's MQTT side with its two clients: ``link_in`` for printer traffic,
    ``link_out`` for commands (the dispatcher publishes through it only)."""

    def __init__(
        self,
        inbound: BrokerAddress,
        outbound: BrokerAddress,
        jobs: DispatchPoint,
        issuer: CommandIssuer,
        *,
        roster: PrinterRoster,
        file_url: Callable[[StoredJob, str], str],
        recorder: HistoryRecorder,
        settings: WorldSettings,
    ) -> None:
        self.recorder = recorder
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.link_in = LinkSupervisor(
            inbound, on_message=self._enqueue, probe_interval_s=settings.probe_interval_s
        )
        # Without safeguards the command client can be made to believe its library (the 2023
        # lie); with them it is the cloud's own supervisor, which believes only round trips.
        self.link_out = (LinkSupervisor if settings.safeguards else CredulousLink)(
            outbound,
            on_message=lambda topic, payload: None,
            probe_interval_s=settings.probe_interval_s,
        )
        self.fleet = FleetView(cloud_ms)
        self.policy = DispatchPolicy(dispatch_window_ms=settings.dispatch_window_ms)
        self.dispatcher = Dispatcher(
            jobs,
            self.fleet,
            self.link_out,
            issuer,
            roster=roster,
            file_url=file_url,
            on_change=self._notify,
            policy=self.policy,
            probe_interval_ms=int(settings.probe_interval_s * 1000),
            tick_s=0.2,
            planner=plan if settings.safeguards else plan_without_safeguards,
            observer=DispatchHistory(recorder),
        )

    def _enqueue(self, topic: str, payload: bytes) -> None:
        self.inbox.put_nowait((topic, payload))

    async def _notify(self, change: JobChange, job: StoredJob) -> None:
        # The notifier's part: every end but completion reaches the submitter (S7).
        if change.notify:
            self.recorder.record(
                Kind.NOTIFICATION_SENT,
                job_id=change.job.id,
                state=change.job.state.value,
                to=job.owner,
            )

    async def run(self) -> None:
        """Both links, the dispatcher and the inbox, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link_in.run(), name="chaos cloud link in")
            group.create_task(self.link_out.run(), name="chaos cloud link out")
            group.create_task(self.dispatcher.run(), name="chaos cloud dispatcher")
            group.create_task(self._drain(), name="chaos cloud inbox")

    async def _drain(self) -> None:
        while True:
            topic, payload = await self.inbox.get()
            ingested = self.fleet.ingest(topic, payload)
            if ingested is None:
                continue
            if ingested.kind is MessageKind.EVENT and ingested.event is not None:
                try:
                    await self.dispatcher.on_event(ingested.event)
                except Exception:  # one bad event must not stop the inbox
                    log.exception("handling an event failed")
            elif ingested.kind is not MessageKind.TELEMETRY:
                self.dispatcher.wake()
