"""Notification channels (a webhook, an Apprise URL): where a user's alerts and job ends go.

A channel's target and secret are sealed with the data directory's key (``sealing.py``) and
opened when read. A repository made without the key (a test, a tool) keeps what it writes as
given and cannot read sealed values (:class:`SecretUnreadable`); :meth:`Channels.seal_secrets`
seals such values later.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from sqlalchemy import delete, select

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import Delivery, NotificationChannel
from printfleet.cloud.store.records import ChannelRecord, channel_record
from printfleet.cloud.store.sealing import SecretBox, SecretUnreadable, is_sealed, seal_context
from printfleet.cloud.store.values import ChannelKind


class Channels:
    """The repository of notification channels."""

    def __init__(self, database: Database, secrets: SecretBox | None) -> None:
        self._db = database
        self._secrets = secrets

    async def create(
        self,
        user_id: str,
        *,
        kind: ChannelKind,
        target: str,
        secret: str | None = None,
        enabled: bool = True,
    ) -> ChannelRecord:
        """Add a notification channel for a user; its target and secret are sealed."""
        channel_id = new_id()
        row = NotificationChannel(
            id=channel_id,
            user_id=user_id,
            kind=kind,
            target=self._seal(target, "target", channel_id),
            secret=None if secret is None else self._seal(secret, "secret", channel_id),
            enabled=enabled,
            created_at=self._db.now(),
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
        return replace(channel_record(row), target=target, secret=secret)

    async def for_user(self, user_id: str) -> list[ChannelRecord]:
        """A user's channels, oldest first."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(NotificationChannel)
                .where(NotificationChannel.user_id == user_id)
                .order_by(NotificationChannel.created_at, NotificationChannel.id)
            )
            return [self._opened(row) for row in rows]

    async def enabled_for(self, user_ids: Collection[str]) -> list[ChannelRecord]:
        """The enabled channels of any of ``user_ids``, oldest first."""
        if not user_ids:
            return []
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(NotificationChannel)
                .where(
                    NotificationChannel.user_id.in_(list(user_ids)),
                    NotificationChannel.enabled.is_(True),
                )
                .order_by(NotificationChannel.created_at, NotificationChannel.id)
            )
            return [self._opened(row) for row in rows]

    async def get(self, channel_id: str) -> ChannelRecord:
        """One channel; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            return self._opened(await get_row(session, NotificationChannel, channel_id))

    async def delete(self, channel_id: str) -> None:
        """Remove a channel and its deliveries; raises :class:`NotFound`."""
        async with self._db.transaction(write=True) as session:
            await session.execute(delete(Delivery).where(Delivery.channel_id == channel_id))
            await session.delete(await get_row(session, NotificationChannel, channel_id))

    async def seal_secrets(self) -> int:
        """Seal every secret column value not yet sealed under the newest key: values kept as
        given (by a store without the key, or before sealing existed) and values sealed under
        an older key. Returns how many rows changed. Raises ValueError without a key, and
        :class:`SecretUnreadable` for a value no key at hand opens (nothing is changed then).
        """
        box = self._secrets
        if box is None:
            raise ValueError("sealing secrets needs the data directory's secrets key")
        changed = 0
        async with self._db.transaction(write=True) as session:
            rows = await session.scalars(
                select(NotificationChannel).order_by(NotificationChannel.id).with_for_update()
            )
            for row in rows:
                target = _reseal(box, row.target, "target", row.id)
                secret = row.secret
                if secret is not None:
                    secret = _reseal(box, secret, "secret", row.id)
                if (target, secret) != (row.target, row.secret):
                    row.target, row.secret = target, secret
                    changed += 1
        return changed

    def _seal(self, value: str, column: str, channel_id: str) -> str:
        if self._secrets is None:
            return value
        return self._secrets.seal(value, context=_channel_context(column, channel_id))

    def _reveal(self, stored: str, column: str, channel_id: str) -> str:
        context = _channel_context(column, channel_id)
        if self._secrets is None:
            if is_sealed(stored):
                msg = f"{context} is sealed, and this store was opened without the secrets key"
                raise SecretUnreadable(msg)
            return stored
        return self._secrets.open(stored, context=context)

    def _opened(self, row: NotificationChannel) -> ChannelRecord:
        return replace(
            channel_record(row),
            target=self._reveal(row.target, "target", row.id),
            secret=None if row.secret is None else self._reveal(row.secret, "secret", row.id),
        )


def _reseal(box: SecretBox, stored: str, column: str, channel_id: str) -> str:
    if box.is_current(stored):
        return stored
    context = _channel_context(column, channel_id)
    return box.seal(box.open(stored, context=context), context=context)


def _channel_context(column: str, channel_id: str) -> str:
    return seal_context(NotificationChannel.__tablename__, column, channel_id)
