"""``CloudCore``: the one place the cloud's MQTT side is wired — link, fleet view, dispatcher.

Messages from the broker go into a bounded inbox, so a burst never blocks the MQTT client's
reader; a full inbox drops telemetry first (the next report supersedes it) and counts it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from printfleet.broker_address import BrokerAddress
from printfleet.cloud.dispatch.dispatcher import (
    Dispatcher,
    FileUrl,
    JobNotice,
    JobRepository,
    PlateNotice,
    PrinterRoster,
    cloud_ms,
)
from printfleet.cloud.dispatch.fleet_view import FleetView, Ingested, Kind
from printfleet.cloud.dispatch.link import LinkSupervisor
from printfleet.cloud.store.values import JSONValue
from printfleet.protocol.dispatch import DispatchPolicy
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.messages import PLATE_EJECTED, AlertEvent, LocalJobEvent, encode
from printfleet.protocol.topics import Topics

log = logging.getLogger(__name__)

INBOX_LIMIT = 10_000


class LocalJobLog(Protocol):
    """Where prints people started at their printers (LAN or screen) are recorded."""

    async def record_local_job(
        self, printer_id: str, job_id: str, *, outcome: str, detail: Mapping[str, JSONValue]
    ) -> bool:
        """Record one, once; False if it was recorded before."""
        ...

    async def record_plate_cleared(self, printer_id: str, event_id: str, *, message: str) -> bool:
        """Record a printer's own clearing of its plate (auto-eject), once."""
        ...


@dataclass(slots=True)
class InboxStats:
    """What the inbox dropped."""

    dropped_telemetry: int = 0
    dropped_other: int = 0


class CloudCore:
    """The cloud's broker-facing half. ``run()`` until cancelled."""

    def __init__(
        self,
        broker: BrokerAddress,
        jobs: JobRepository,
        issuer: CommandIssuer,
        *,
        roster: PrinterRoster,
        file_url: FileUrl,
        on_change: JobNotice,
        on_ingested: Callable[[Ingested], Awaitable[None]] | None = None,
        on_plate_needed: PlateNotice | None = None,
        topics: Topics | None = None,
        policy: DispatchPolicy | None = None,
        probe_interval_s: float = 2.0,
        model_of: Callable[[str], str | None] = lambda printer_id: None,
        local_jobs: LocalJobLog | None = None,
    ) -> None:
        self.topics = topics or Topics()
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=INBOX_LIMIT)
        self.inbox_stats = InboxStats()
        self.link = LinkSupervisor(
            broker,
            on_message=self._enqueue,
            topics=self.topics,
            probe_interval_s=probe_interval_s,
        )
        self.fleet = FleetView(cloud_ms, topics=self.topics, model_of=model_of)
        self.dispatcher = Dispatcher(
            jobs,
            self.fleet,
            self.link,
            issuer,
            roster=roster,
            file_url=file_url,
            on_change=on_change,
            on_plate_needed=on_plate_needed,
            policy=policy,
            probe_interval_ms=int(probe_interval_s * 1000),
        )
        self._on_ingested = on_ingested
        self.local_jobs = local_jobs

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if not self.inbox.full():
            self.inbox.put_nowait((topic, payload))
        elif topic.endswith("/telemetry"):
            self.inbox_stats.dropped_telemetry += 1
        else:
            # Journal queries and state reports recover what is lost here (S7 still holds).
            self.inbox_stats.dropped_other += 1
            log.error("inbox full: dropped a message on %s", topic)

    async def run(self) -> None:
        """Run the link, the dispatcher and the inbox until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.link.run(), name="cloud link")
            group.create_task(self.dispatcher.run(), name="cloud dispatcher")
            group.create_task(self._drain_inbox(), name="cloud inbox")

    async def _record_local_job(self, event: LocalJobEvent) -> None:
        """Put a local print in the printer's history, then acknowledge it so the printer
        stops re-sending it. Never a dispatch: the printer did this itself."""
        if self.local_jobs is None:
            return
        body = event.body
        detail: dict[str, JSONValue] = {
            "source": body.source.value,
            "name": body.name,
            "outcome": body.outcome.value,
            "detail": body.detail,
            "ended_at": body.ended_at,
            "duration_s": body.duration_s,
        }
        await self.local_jobs.record_local_job(
            event.printer_id, event.job_id, outcome=body.outcome.value, detail=detail
        )
        ack = self.dispatcher.issuer.local_job_ack(
            event.printer_id, (event.job_id,), now=cloud_ms()
        )
        # Not sent now: the printer sends the report again, and is answered then.
        await self.link.publish(self.topics.commands(event.printer_id), encode(ack))

    async def _drain_inbox(self) -> None:
        while True:
            topic, payload = await self.inbox.get()
            ingested = self.fleet.ingest(topic, payload)
            if ingested is None:
                continue
            if ingested.kind is Kind.EVENT and ingested.event is not None:
                try:
                    if isinstance(ingested.event, LocalJobEvent):
                        await self._record_local_job(ingested.event)
                    elif (
                        isinstance(ingested.event, AlertEvent)
                        and ingested.event.body.kind == PLATE_EJECTED
                        and self.local_jobs is not None
                    ):
                        await self.local_jobs.record_plate_cleared(
                            ingested.event.printer_id,
                            ingested.event.id,
                            message=ingested.event.body.message,
                        )
                    await self.dispatcher.on_event(ingested.event)
                except Exception:  # one bad event must not stop the inbox
                    log.exception(
                        "handling %s from %s failed", ingested.event.type, ingested.printer_id
                    )
            elif ingested.kind is not Kind.TELEMETRY:
                self.dispatcher.wake()
            if self._on_ingested is not None:
                try:
                    await self._on_ingested(ingested)
                except Exception:  # listeners (alerts, SSE) must not stop dispatch
                    log.exception("a listener failed on a message from %s", ingested.printer_id)
