"""Notification channels: where a user's alerts and job ends go besides the live event stream.

A webhook (a URL and the secret that signs each body) or an Apprise URL (e-mail and the other
services Apprise reaches). Each user sees and manages only their own channels; another user's
is 404. Deliveries, including the ones given up on (dead letters), are listed per channel.

A target the outbound policy refuses (an internal address, the cloud's own) is refused here with
422, and again at every connection, since a name's addresses can change after it was added.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import ApiContext, Context
from printfleet.cloud.api.errors import ERROR_RESPONSES
from printfleet.cloud.api.schemas import ChannelOut, DeliveryOut, NewChannel, NotificationSent
from printfleet.cloud.notify import (
    Notification,
    NotificationKind,
    OutboundPolicy,
    OutboundRefused,
    check_apprise_url,
)
from printfleet.cloud.notify.announcer import Announcer
from printfleet.cloud.service import InvalidRequest, Principal
from printfleet.cloud.store import ChannelKind, ChannelRecord, NotFound

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=ERROR_RESPONSES)

MAX_CHANNELS_PER_USER = 20


@router.get("/channels")
async def list_channels(principal: Reader, context: Context) -> list[ChannelOut]:
    """The caller's channels, oldest first (secrets and credentials never shown)."""
    channels = await context.store.channels_for_user(principal.user.id)
    return [ChannelOut.of(channel) for channel in channels]


@router.post("/channels", status_code=status.HTTP_201_CREATED)
async def add_channel(body: NewChannel, principal: Writer, context: Context) -> ChannelOut:
    """Add a webhook (``target`` URL and ``secret``) or an Apprise URL (``mailto://...``).

    The target must lead to an address the outbound policy allows: not loopback, private,
    link-local (cloud metadata), unique-local, multicast or the cloud's own, unless the
    operator's allow-list (``PRINTFLEET_OUTBOUND_ALLOW``) names it; 422 names the rule.
    """
    await _check_target(body, context.outbound)
    existing = await context.store.channels_for_user(principal.user.id)
    if len(existing) >= MAX_CHANNELS_PER_USER:
        raise InvalidRequest(f"a user may have at most {MAX_CHANNELS_PER_USER} channels")
    channel = await context.store.create_channel(
        principal.user.id, kind=body.kind, target=body.target, secret=body.secret
    )
    return ChannelOut.of(channel)


@router.delete("/channels/{channel_id}")
async def delete_channel(channel_id: str, principal: Writer, context: Context) -> ChannelOut:
    """Remove one of the caller's channels, and its delivery records."""
    channel = await _own_channel(context, principal, channel_id)
    await context.store.delete_channel(channel.id)
    return ChannelOut.of(channel)


@router.post("/channels/{channel_id}/test", status_code=status.HTTP_202_ACCEPTED)
async def test_channel(channel_id: str, principal: Writer, context: Context) -> NotificationSent:
    """Send a ``test`` notification to this channel (and the caller's event streams) now."""
    channel = await _own_channel(context, principal, channel_id)
    notification = Notification.create(
        NotificationKind.TEST,
        title="printfleet test notification",
        message=f"This {channel.kind.value} channel reaches {principal.user.email}.",
        user_ids=[principal.user.id],
    )
    await _announcer(context).send(notification, to_channels=True, channel_ids={channel.id})
    return NotificationSent(notification_id=notification.id)


@router.get("/channels/{channel_id}/deliveries")
async def list_deliveries(
    channel_id: str,
    principal: Reader,
    context: Context,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The channel's deliveries, newest first: pending, delivered, or dead letters."""
    channel = await _own_channel(context, principal, channel_id)
    deliveries = await context.store.deliveries_for_channel(channel.id, limit=limit)
    return [DeliveryOut.of(delivery) for delivery in deliveries]


async def _own_channel(context: ApiContext, principal: Principal, channel_id: str) -> ChannelRecord:
    try:
        channel = await context.store.get_channel(channel_id)
    except NotFound:
        channel = None
    if channel is None or channel.user_id != principal.user.id:
        raise NotFound(f"no channel {channel_id}")
    return channel


def _announcer(context: ApiContext) -> Announcer:
    if context.announcer is None:  # pragma: no cover - the app always makes one
        raise RuntimeError("this app runs without notifications")
    return context.announcer


async def _check_target(body: NewChannel, policy: OutboundPolicy) -> None:
    if body.kind is ChannelKind.WEBHOOK:
        if body.secret is None:
            raise InvalidRequest("a webhook needs a secret (16+ characters) to sign its bodies")
        check = policy.check_http_url
    else:
        if body.secret is not None:
            raise InvalidRequest("only webhooks take a secret; Apprise URLs carry their own")

        def check(url: str) -> None:
            check_apprise_url(url, policy)

    try:
        # A DNS lookup, and for Apprise a first load of its plugins: off the event loop.
        await asyncio.to_thread(check, body.target)
    except OutboundRefused as refused:
        raise InvalidRequest(str(refused)) from None
    except ValueError as error:
        if body.kind is ChannelKind.WEBHOOK:
            raise InvalidRequest(str(error)) from None
        raise InvalidRequest(
            f"{error} (see https://github.com/caronc/apprise/wiki), "
            "e.g. mailtos://user:password@example.org?to=me@example.org"
        ) from None
