"""Sending notifications: to the live streams at once, and to people's channels through the
store's delivery table, so that every delivery is recorded before it is sent and its outcome
after (delivered, or a dead letter to look at), and one left unsettled by a dead sender is sent
again by any replica."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

from printfleet.cloud.notify.model import Notification
from printfleet.cloud.notify.notifier import Channel, ChannelKind, DeliveryOutcome, Notifier
from printfleet.cloud.notify.records import ChannelLookup, DeliveryQueue
from printfleet.cloud.store import NotFound, StoreError

# The announcer's parts log under the announcer's name: one logger for operators to follow.
log = logging.getLogger("printfleet.cloud.notify.announcer")

DELIVERY_LEASE_S = 120.0
"""A delivery still unsettled this long after it was queued is sent again, by any replica: its
sender died. Longer than a webhook's whole retry deadline (60 s), so a live one is left alone."""

REFUSED_BY_NOTIFIER = "the notifier was full or shutting down"


class ChannelDeliveries:
    """Notifications out through the notifier, each channel's delivery kept in the store."""

    def __init__(
        self,
        channels: ChannelLookup,
        deliveries: DeliveryQueue,
        notifier: Notifier,
        *,
        lease_s: float = DELIVERY_LEASE_S,
    ) -> None:
        self.channels = channels
        self.deliveries = deliveries
        self.notifier = notifier
        self._lease_ms = int(lease_s * 1000)
        self._in_flight: dict[tuple[str, str], str] = {}
        """(channel id, notification id) -> delivery id, while the notifier sends it."""

    async def send(
        self,
        notification: Notification,
        *,
        to_channels: bool,
        channel_ids: Collection[str] | None = None,
    ) -> None:
        """Publish to the live streams; with ``to_channels``, record and queue a delivery to
        each enabled channel of the recipients (only ``channel_ids``, if given)."""
        channels = await self.record(notification, channel_ids) if to_channels else []
        receipt = self.notifier.notify(notification, channels)
        await self.refused(notification, receipt.refused)

    async def send_late(self, notification: Notification, *, created_by: int | None) -> int:
        """Queue ``notification`` to its recipients' channels made by ``created_by`` (cloud ms),
        unless an earlier announcement settled it already; how many deliveries were queued."""
        channels = await self.record(notification, None, created_by=created_by)
        if channels:
            await self.refused(notification, self.notifier.queue(notification, channels).refused)
        return len(channels)

    async def refused(self, notification: Notification, channels: Collection[Channel]) -> None:
        """Deliveries the notifier would not take: dead letters now."""
        for channel in channels:
            await self.ended(
                DeliveryOutcome(
                    notification, channel, delivered=False, attempts=0, reason=REFUSED_BY_NOTIFIER
                )
            )

    async def record(
        self,
        notification: Notification,
        only: Collection[str] | None,
        *,
        created_by: int | None = None,
    ) -> list[Channel]:
        """Record a delivery of ``notification`` to each enabled channel of its recipients
        (only ``only``; only channels made by ``created_by``), and return the channels to send
        it to now: not those an earlier announcement settled or is still sending."""
        records = await self.channels.enabled_for(notification.user_ids)
        channels = []
        for record in records:
            if only is not None and record.id not in only:
                continue
            if created_by is not None and record.created_at > created_by:
                continue
            key = (record.id, notification.id)
            if key in self._in_flight:
                continue  # announced again while the first is still on its way
            delivery = await self.deliveries.enqueue(
                record.id,
                event_key=notification.id,
                payload=_json(notification),
                hold_ms=self._lease_ms,
            )
            if delivery.delivered_at is not None or delivery.dead_lettered_at is not None:
                continue  # an earlier announcement of the same thing settled it
            self._in_flight[key] = delivery.id
            channels.append(
                Channel(ChannelKind(record.kind.value), record.target, record.secret, id=record.id)
            )
        return channels

    async def resend_unsettled(self) -> int:
        """Send again the deliveries whose sender died before settling them (a crash, a kill
        during a restart); how many were queued. Delivery is at least once: receivers
        deduplicate on the notification id."""
        queued = 0
        for delivery in await self.deliveries.claim(limit=50, lease_ms=self._lease_ms):
            try:
                record = await self.channels.get(delivery.channel_id)
            except NotFound:
                continue
            key = (record.id, delivery.event_key)
            if not record.enabled or key in self._in_flight:
                continue
            try:
                notification = Notification.from_payload(
                    delivery.payload, user_ids=[record.user_id]
                )
            except (KeyError, TypeError, ValueError) as error:
                await self.deliveries.failed(
                    delivery.id, error=f"unreadable stored payload: {error}", retry_at=None
                )
                continue
            channel = Channel(
                ChannelKind(record.kind.value), record.target, record.secret, id=record.id
            )
            self._in_flight[key] = delivery.id
            if self.notifier.queue(notification, [channel]).refused:
                del self._in_flight[key]  # due again when this claim's lease ends
            else:
                queued += 1
        if queued:
            log.warning("sending %d notification deliveries again, left unsettled", queued)
        return queued

    async def resend_unsettled_forever(self) -> None:
        """:meth:`resend_unsettled` every quarter lease, until cancelled."""
        while True:
            try:
                await self.resend_unsettled()
            except StoreError:
                log.exception("could not look for unsettled notification deliveries")
            await asyncio.sleep(self._lease_ms / 4000)

    async def ended(self, outcome: DeliveryOutcome) -> None:
        """Record how a delivery ended: delivered, or a dead letter to look at."""
        channel_id = outcome.channel.id
        if channel_id is None:
            return
        notification = outcome.notification
        key = (channel_id, notification.id)
        # Still marked in flight until the outcome is written: announced again meanwhile, it
        # must look neither unsent nor unsettled.
        delivery_id = self._in_flight.get(key)
        try:
            if outcome.delivered and delivery_id is not None:
                await self.deliveries.succeeded(delivery_id, attempts=outcome.attempts)
            elif not outcome.delivered:
                await self.deliveries.record_dead_letter(
                    channel_id,
                    event_key=notification.id,
                    payload=_json(notification),
                    attempts=outcome.attempts,
                    error=outcome.reason,
                )
        except NotFound:
            pass  # the channel was deleted meanwhile
        finally:
            self._in_flight.pop(key, None)


def _json(notification: Notification) -> dict[str, Any]:
    return dict(notification.payload())
