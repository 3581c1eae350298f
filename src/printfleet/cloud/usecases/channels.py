"""Notification channels: where a user's alerts and job ends go besides the live event stream.

A webhook (a URL and the secret that signs each body) or an Apprise URL (e-mail and the other
services Apprise reaches). Each user sees and manages only their own channels; another user's
is NotFound. A target the outbound policy refuses (an internal address, the cloud's own) is
refused when the channel is added, and again at every connection, since a name's addresses can
change after it was added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Protocol

from printfleet.cloud.notify import (
    Notification,
    NotificationKind,
    OutboundPolicy,
    OutboundRefused,
    check_apprise_url,
)
from printfleet.cloud.store import (
    ChannelKind,
    ChannelRecord,
    DeliveryRecord,
    NotFound,
)
from printfleet.cloud.usecases.ports import ChannelRecords, DeliveryRecords
from printfleet.cloud.usecases.principal import InvalidRequest, Principal, Scope

MAX_CHANNELS_PER_USER = 20


class NotificationSender(Protocol):
    """Where a test notification goes out: the announcer, in the running cloud."""

    async def send(
        self,
        notification: Notification,
        *,
        to_channels: bool,
        channel_ids: Collection[str] | None = None,
    ) -> None:
        """Publish ``notification``, and queue it to the recipients' channels if asked."""
        ...


class ChannelActions:
    """What people do with their notification channels."""

    def __init__(
        self,
        channels: ChannelRecords,
        deliveries: DeliveryRecords,
        *,
        outbound: OutboundPolicy,
        sender: NotificationSender | None = None,
    ) -> None:
        self.channels = channels
        self.deliveries = deliveries
        self.outbound = outbound
        self.sender = sender

    async def channels_for(self, principal: Principal) -> list[ChannelRecord]:
        """The caller's channels, oldest first."""
        return await self.channels.for_user(principal.user.id)

    async def add_channel(
        self, principal: Principal, kind: ChannelKind, target: str, secret: str | None
    ) -> ChannelRecord:
        """Add a webhook (``target`` URL and ``secret``) or an Apprise URL (``mailto://...``).

        The target must lead to an address the outbound policy allows: not loopback, private,
        link-local (cloud metadata), unique-local, multicast or the cloud's own, unless the
        operator's allow-list (``PRINTFLEET_OUTBOUND_ALLOW``) names it; the refusal names the
        rule.
        """
        principal.require(Scope.WRITE)
        await self._check_target(kind, target, secret)
        existing = await self.channels.for_user(principal.user.id)
        if len(existing) >= MAX_CHANNELS_PER_USER:
            raise InvalidRequest(f"a user may have at most {MAX_CHANNELS_PER_USER} channels")
        return await self.channels.create(
            principal.user.id, kind=kind, target=target, secret=secret
        )

    async def delete_channel(self, principal: Principal, channel_id: str) -> ChannelRecord:
        """Remove one of the caller's channels, and its delivery records; the channel as it was."""
        principal.require(Scope.WRITE)
        channel = await self.channel(principal, channel_id)
        await self.channels.delete(channel.id)
        return channel

    async def test_channel(self, principal: Principal, channel_id: str) -> Notification:
        """Send a ``test`` notification to one of the caller's channels (and their event
        streams) now; the notification sent."""
        principal.require(Scope.WRITE)
        channel = await self.channel(principal, channel_id)
        if self.sender is None:  # pragma: no cover - the app always has one
            raise RuntimeError("this cloud runs without notifications")
        notification = Notification.create(
            NotificationKind.TEST,
            title="printfleet test notification",
            message=f"This {channel.kind.value} channel reaches {principal.user.email}.",
            user_ids=[principal.user.id],
        )
        await self.sender.send(notification, to_channels=True, channel_ids={channel.id})
        return notification

    async def deliveries_of(
        self, principal: Principal, channel_id: str, *, limit: int = 100
    ) -> list[DeliveryRecord]:
        """A channel's deliveries, newest first: pending, delivered, or dead letters."""
        channel = await self.channel(principal, channel_id)
        return await self.deliveries.for_channel(channel.id, limit=limit)

    async def channel(self, principal: Principal, channel_id: str) -> ChannelRecord:
        """One of the caller's channels; anyone else's is NotFound, as a missing one is."""
        try:
            channel = await self.channels.get(channel_id)
        except NotFound:
            channel = None
        if channel is None or channel.user_id != principal.user.id:
            raise NotFound(f"no channel {channel_id}")
        return channel

    async def _check_target(self, kind: ChannelKind, target: str, secret: str | None) -> None:
        policy = self.outbound
        if kind is ChannelKind.WEBHOOK:
            if secret is None:
                raise InvalidRequest("a webhook needs a secret (16+ characters) to sign its bodies")
            check = policy.check_http_url
        else:
            if secret is not None:
                raise InvalidRequest("only webhooks take a secret; Apprise URLs carry their own")

            def check(url: str) -> None:
                check_apprise_url(url, policy)

        try:
            # A DNS lookup, and for Apprise a first load of its plugins: off the event loop.
            await asyncio.to_thread(check, target)
        except OutboundRefused as refused:
            raise InvalidRequest(str(refused)) from None
        except ValueError as error:
            if kind is ChannelKind.WEBHOOK:
                raise InvalidRequest(str(error)) from None
            raise InvalidRequest(
                f"{error} (see https://github.com/caronc/apprise/wiki), "
                "e.g. mailtos://user:password@example.org?to=me@example.org"
            ) from None
