"""Deliveries: a durable queue of notifications to send to channels, which a sender claims,
retries, and finally marks delivered or dead-lettered."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.errors import NotFound
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import Delivery
from printfleet.cloud.store.records import DeliveryRecord, delivery_record
from printfleet.cloud.store.values import JSONValue


class Deliveries:
    """The repository of deliveries (at least once, shared by every replica)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def for_channel(self, channel_id: str, *, limit: int = 100) -> list[DeliveryRecord]:
        """A channel's most recent deliveries, newest first."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(Delivery)
                .where(Delivery.channel_id == channel_id)
                .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                .limit(limit)
            )
            return [delivery_record(row) for row in rows]

    async def enqueue(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        hold_ms: int = 0,
    ) -> DeliveryRecord:
        """Queue ``payload`` for a channel, once per ``event_key``: a repeated key returns the
        delivery queued first. Raises :class:`NotFound` for an unknown channel.

        ``hold_ms``: a sender that sends it right away keeps :meth:`claim` off it for that
        long; unsettled after that (its sender died), it is due for anyone to send.
        """
        now = self._db.now()
        row = {
            **_new_delivery(channel_id, event_key, payload, now),
            "next_attempt_at": now + hold_ms,
        }
        async with self._db.transaction(write=True) as session:
            await session.execute(
                self._db.insert(Delivery)
                .values(row)
                .on_conflict_do_nothing(index_elements=[Delivery.channel_id, Delivery.event_key])
            )
            return delivery_record(await _delivery(session, channel_id, event_key))

    async def record_dead_letter(
        self,
        channel_id: str,
        *,
        event_key: str,
        payload: Mapping[str, JSONValue],
        attempts: int,
        error: str,
    ) -> DeliveryRecord:
        """Keep a delivery that a sender gave up on (one it never queued here, or one it did),
        for a person or a job to look at and retry."""
        now = self._db.now()
        given_up = {"attempts": attempts, "last_error": error, "dead_lettered_at": now}
        async with self._db.transaction(write=True) as session:
            statement = self._db.insert(Delivery).values(
                {**_new_delivery(channel_id, event_key, payload, now), **given_up}
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[Delivery.channel_id, Delivery.event_key], set_=given_up
                )
            )
            return delivery_record(await _delivery(session, channel_id, event_key))

    async def claim(self, *, limit: int = 20, lease_ms: int = 30_000) -> list[DeliveryRecord]:
        """Take up to ``limit`` deliveries that are due, for ``lease_ms``.

        A claim counts an attempt and moves ``next_attempt_at`` to the end of the lease, so
        other replicas leave the rows alone while this one sends; if it dies, they are due
        again when the lease ends (delivery is at least once). Report each outcome with
        :meth:`succeeded` or :meth:`failed`.
        """
        now = self._db.now()
        async with self._db.transaction(write=True) as session:
            due = (
                select(Delivery.id)
                .where(
                    Delivery.delivered_at.is_(None),
                    Delivery.dead_lettered_at.is_(None),
                    Delivery.next_attempt_at <= now,
                )
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
                # PostgreSQL: replicas claiming at once each take different rows instead of
                # queueing on the same ones (SQLite serialises writers anyway).
                .with_for_update(skip_locked=True)
            )
            ids = list(await session.scalars(due))
            if not ids:
                return []
            rows = await session.scalars(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(attempts=Delivery.attempts + 1, next_attempt_at=now + lease_ms)
                .returning(Delivery),
                execution_options={"synchronize_session": False},
            )
            claimed = [delivery_record(row) for row in rows]
        return sorted(claimed, key=lambda delivery: (delivery.created_at, delivery.id))

    async def succeeded(self, delivery_id: str, *, attempts: int | None = None) -> None:
        """Mark a claimed delivery as delivered (after ``attempts`` tries, if the sender says)."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, Delivery, delivery_id)
            if row.delivered_at is None:
                row.delivered_at = self._db.now()
                if attempts is not None:
                    row.attempts = max(row.attempts, attempts)

    async def failed(self, delivery_id: str, *, error: str, retry_at: int | None) -> None:
        """Record a failed attempt: try again at ``retry_at``, or give up (dead-letter) if None."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, Delivery, delivery_id)
            row.last_error = error
            if retry_at is None:
                row.dead_lettered_at = self._db.now()
            else:
                row.next_attempt_at = retry_at


async def _delivery(session: AsyncSession, channel_id: str, event_key: str) -> Delivery:
    row = await session.scalar(
        select(Delivery).where(Delivery.channel_id == channel_id, Delivery.event_key == event_key)
    )
    if row is None:  # pragma: no cover - written just before, in the same transaction
        raise NotFound(f"no delivery {event_key} to channel {channel_id}")
    return row


def _new_delivery(
    channel_id: str, event_key: str, payload: Mapping[str, JSONValue], now: int
) -> dict[str, object]:
    return {
        "id": new_id(),
        "channel_id": channel_id,
        "event_key": event_key,
        "payload": dict(payload),
        "attempts": 0,
        "next_attempt_at": now,
        "delivered_at": None,
        "dead_lettered_at": None,
        "last_error": "",
        "created_at": now,
    }
