"""Users and their API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import or_, select, update

from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.ids import new_id, token_digest
from printfleet.cloud.store.models import ApiToken, User
from printfleet.cloud.store.records import TokenRecord, UserRecord, token_record, user_record

TOKEN_TOUCH_INTERVAL_MS = 60_000
"""``last_used_at`` is updated at most this often: one write per request would turn every
authenticated read into a write, the very load the overload design avoids."""


class Accounts:
    """The repository of users and API tokens."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create_user(self, email: str, *, display_name: str, password_hash: str) -> UserRecord:
        """Add a user. E-mail addresses are stored lower-cased, so they are unique regardless of
        case. Raises :class:`AlreadyExists` for a known address."""
        row = User(
            id=new_id(),
            email=normal_email(email),
            display_name=display_name,
            password_hash=password_hash,
            created_at=self._db.now(),
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
        return user_record(row)

    async def get_user(self, user_id: str) -> UserRecord:
        """A user by id; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            return user_record(await get_row(session, User, user_id))

    async def user_by_email(self, email: str) -> UserRecord | None:
        """A user by e-mail address (any case), or None."""
        async with self._db.transaction(write=False) as session:
            row = await session.scalar(select(User).where(User.email == normal_email(email)))
            return None if row is None else user_record(row)

    async def has_users(self) -> bool:
        """Whether any account exists (a fresh install has none)."""
        async with self._db.transaction(write=False) as session:
            return await session.scalar(select(User.id).limit(1)) is not None

    async def create_token(
        self, user_id: str, *, name: str, token: str, scopes: Iterable[str], expires_at: int
    ) -> TokenRecord:
        """Register an API token the caller generated, working until ``expires_at`` (cloud ms);
        only its digest is kept."""
        row = ApiToken(
            id=new_id(),
            user_id=user_id,
            name=name,
            token_sha256=token_digest(token),
            scopes=sorted(set(scopes)),
            created_at=self._db.now(),
            last_used_at=None,
            revoked_at=None,
            expires_at=expires_at,
        )
        async with self._db.transaction(write=True) as session:
            session.add(row)
        return token_record(row)

    async def authenticate_token(self, token: str) -> TokenRecord | None:
        """The unrevoked token with this value, or None; notes that it was used unless it has
        expired (the caller checks :meth:`TokenRecord.expired`, to say why it refuses)."""
        async with self._db.transaction(write=False) as session:
            row = await session.scalar(
                select(ApiToken).where(ApiToken.token_sha256 == token_digest(token))
            )
            if row is None or row.revoked_at is not None:
                return None
            record = token_record(row)
        now = self._db.now()
        if record.expired(now):
            return record
        stale = now - TOKEN_TOUCH_INTERVAL_MS
        if record.last_used_at is None or record.last_used_at <= stale:
            async with self._db.transaction(write=True) as session:
                await session.execute(
                    update(ApiToken)
                    .where(
                        ApiToken.id == record.id,
                        or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= stale),
                    )
                    .values(last_used_at=now)
                )
            record = replace(record, last_used_at=now)
        return record

    async def tokens_for_user(self, user_id: str) -> list[TokenRecord]:
        """A user's tokens, revoked ones included, oldest first."""
        async with self._db.transaction(write=False) as session:
            rows = await session.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user_id)
                .order_by(ApiToken.created_at, ApiToken.id)
            )
            return [token_record(row) for row in rows]

    async def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke a token (a second revocation keeps the first time); raises :class:`NotFound`."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, ApiToken, token_id)
            if row.revoked_at is None:
                row.revoked_at = self._db.now()
            return token_record(row)


def normal_email(email: str) -> str:
    """An e-mail address as the store keeps and compares it: trimmed, lower case."""
    return email.strip().lower()
