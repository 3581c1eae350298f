"""Notification channels: where a user's alerts and job ends go besides the live event stream.

A webhook (a URL and the secret that signs each body) or an Apprise URL (e-mail and the other
services Apprise reaches). Each user sees and manages only their own channels; another user's
is 404. Deliveries, including the ones given up on (dead letters), are listed per channel.

A target the outbound policy refuses (an internal address, the cloud's own) is refused here with
422, and again at every connection, since a name's addresses can change after it was added.
The rules are the channel use cases' (``cloud/usecases/channels.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.api.schemas import ChannelOut, DeliveryOut, NewChannel, NotificationSent

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=ERROR_RESPONSES)


@router.get("/channels")
async def list_channels(principal: Reader, context: Context) -> list[ChannelOut]:
    """The caller's channels, oldest first (secrets and credentials never shown)."""
    channels = await context.service.channels.channels_for(principal)
    return [ChannelOut.of(channel) for channel in channels]


@router.post("/channels", status_code=status.HTTP_201_CREATED)
async def add_channel(body: NewChannel, principal: Writer, context: Context) -> ChannelOut:
    """Add a webhook (``target`` URL and ``secret``) or an Apprise URL (``mailto://...``).

    The target must lead to an address the outbound policy allows: not loopback, private,
    link-local (cloud metadata), unique-local, multicast or the cloud's own, unless the
    operator's allow-list (``PRINTFLEET_OUTBOUND_ALLOW``) names it; 422 names the rule.
    """
    channel = await context.service.channels.add_channel(
        principal, body.kind, body.target, body.secret
    )
    return ChannelOut.of(channel)


@router.delete("/channels/{channel_id}")
async def delete_channel(channel_id: str, principal: Writer, context: Context) -> ChannelOut:
    """Remove one of the caller's channels, and its delivery records."""
    return ChannelOut.of(await context.service.channels.delete_channel(principal, channel_id))


@router.post("/channels/{channel_id}/test", status_code=status.HTTP_202_ACCEPTED)
async def test_channel(channel_id: str, principal: Writer, context: Context) -> NotificationSent:
    """Send a ``test`` notification to this channel (and the caller's event streams) now."""
    notification = await context.service.channels.test_channel(principal, channel_id)
    return NotificationSent(notification_id=notification.id)


@router.get("/channels/{channel_id}/deliveries")
async def list_deliveries(
    channel_id: str,
    principal: Reader,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The channel's deliveries, newest first: pending, delivered, or dead letters."""
    deliveries = await context.service.channels.deliveries_of(principal, channel_id, limit=limit)
    return [DeliveryOut.of(delivery) for delivery in deliveries]
