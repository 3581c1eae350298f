"""Pools: named groups of printers that jobs may target ("any printer of this pool").

A pool belongs to the user who made it. Who may put which printer in it (only printers they
may operate) is the use case's rule; the dispatcher checks again at every start who may operate
the printer (S1), so a pool never widens anyone's reach.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from printfleet.cloud.store.audit import audit_row
from printfleet.cloud.store.engine import Database, get_row
from printfleet.cloud.store.errors import StateConflict
from printfleet.cloud.store.ids import new_id
from printfleet.cloud.store.models import AuditEntry, Job, Pool, PoolPrinter
from printfleet.cloud.store.records import PoolRecord, pool_record
from printfleet.cloud.store.values import Actor, JSONValue
from printfleet.protocol.lifecycle import TERMINAL_STATES, JobState

_OPEN = sorted(set(JobState) - TERMINAL_STATES)


class Pools:
    """The repository of pools and their printers; every change is audited."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def create(self, owner_id: str, name: str, printer_ids: Collection[str]) -> PoolRecord:
        """Make a pool of ``printer_ids``. Raises :class:`AlreadyExists` if the owner has a pool
        of that name, :class:`NotFound` for an unknown printer or owner."""
        row = Pool(id=new_id(), owner_id=owner_id, name=name, created_at=self._db.now())
        async with self._db.transaction(write=True) as session:
            session.add(row)
            await session.flush()
            await _set_printers(session, row.id, printer_ids)
            actor = Actor.user(owner_id)
            session.add(_audit(self._db.now(), actor, "pool.created", row, printer_ids))
        return pool_record(row, list(printer_ids))

    async def get(self, pool_id: str) -> PoolRecord:
        """A pool by id; raises :class:`NotFound`."""
        async with self._db.transaction(write=False) as session:
            row = await get_row(session, Pool, pool_id)
            return pool_record(row, await _printers_of(session, pool_id))

    async def for_owner(self, owner_id: str) -> list[PoolRecord]:
        """A user's pools, by name (two queries)."""
        async with self._db.transaction(write=False) as session:
            rows = list(
                await session.scalars(
                    select(Pool).where(Pool.owner_id == owner_id).order_by(Pool.name)
                )
            )
            members = await session.execute(
                select(PoolPrinter.pool_id, PoolPrinter.printer_id)
                .join(Pool, Pool.id == PoolPrinter.pool_id)
                .where(Pool.owner_id == owner_id)
            )
            printers: dict[str, list[str]] = {}
            for pool_id, printer_id in members:
                printers.setdefault(pool_id, []).append(printer_id)
            return [pool_record(row, printers.get(row.id, [])) for row in rows]

    async def update(
        self,
        pool_id: str,
        *,
        actor: Actor,
        name: str | None = None,
        printer_ids: Collection[str] | None = None,
    ) -> PoolRecord:
        """Rename a pool, or replace its printers (None: keep). Raises :class:`NotFound`, or
        :class:`AlreadyExists` for a name the owner's other pool has."""
        async with self._db.transaction(write=True) as session:
            row = await get_row(session, Pool, pool_id)
            if name is not None:
                row.name = name
                await session.flush()
            if printer_ids is not None:
                await session.execute(delete(PoolPrinter).where(PoolPrinter.pool_id == pool_id))
                await _set_printers(session, pool_id, printer_ids)
            members = await _printers_of(session, pool_id)
            session.add(_audit(self._db.now(), actor, "pool.updated", row, members))
            return pool_record(row, members)

    async def delete(self, pool_id: str, *, actor: Actor) -> None:
        """Delete a pool. Raises :class:`NotFound`, and :class:`StateConflict` while a job not
        yet ended targets it: such a job would lose its target and could start nowhere."""
        async with self._db.transaction(write=True) as session:
            # Lock the pool first: a job created for it concurrently (whose foreign key check
            # wants the row too) then either lands before, and is counted, or fails after.
            row = await session.scalar(select(Pool).where(Pool.id == pool_id).with_for_update())
            if row is None:
                await get_row(session, Pool, pool_id)  # raises NotFound
                return
            waiting = await session.scalar(
                select(func.count()).where(Job.pool_id == pool_id, Job.state.in_(_OPEN))
            )
            if waiting:
                raise StateConflict(
                    f"pool {row.name!r} is the target of {waiting} jobs not yet ended: "
                    "cancel them, or wait for them to end, before deleting it"
                )
            members = await _printers_of(session, pool_id)
            await session.delete(row)
            session.add(_audit(self._db.now(), actor, "pool.deleted", row, members))

    async def memberships(self) -> dict[str, frozenset[str]]:
        """Printer id -> the ids of the pools it is in (one query), for the dispatcher."""
        async with self._db.transaction(write=False) as session:
            rows = await session.execute(select(PoolPrinter.printer_id, PoolPrinter.pool_id))
            pools: dict[str, set[str]] = {}
            for printer_id, pool_id in rows:
                pools.setdefault(printer_id, set()).add(pool_id)
            return {printer_id: frozenset(ids) for printer_id, ids in pools.items()}

    async def of_printers(self, owner_id: str) -> dict[str, tuple[str, ...]]:
        """Printer id -> the ids of ``owner_id``'s pools it is in: what a user sees of the
        pools of the printers they list (other users' pools stay theirs)."""
        async with self._db.transaction(write=False) as session:
            rows = await session.execute(
                select(PoolPrinter.printer_id, PoolPrinter.pool_id)
                .join(Pool, Pool.id == PoolPrinter.pool_id)
                .where(Pool.owner_id == owner_id)
                .order_by(PoolPrinter.pool_id)
            )
            pools: dict[str, list[str]] = {}
            for printer_id, pool_id in rows:
                pools.setdefault(printer_id, []).append(pool_id)
            return {printer_id: tuple(ids) for printer_id, ids in pools.items()}


async def _set_printers(session: AsyncSession, pool_id: str, printer_ids: Collection[str]) -> None:
    session.add_all(
        PoolPrinter(pool_id=pool_id, printer_id=printer_id) for printer_id in set(printer_ids)
    )
    await session.flush()


async def _printers_of(session: AsyncSession, pool_id: str) -> list[str]:
    rows = await session.scalars(
        select(PoolPrinter.printer_id).where(PoolPrinter.pool_id == pool_id)
    )
    return list(rows)


def _audit(
    at: int, actor: Actor, action: str, pool: Pool, printer_ids: Collection[str]
) -> AuditEntry:
    return audit_row(
        at,
        actor,
        action,
        detail={
            "pool_id": pool.id,
            "name": pool.name,
            "printer_ids": _json_list(sorted(printer_ids)),
        },
    )


def _json_list(items: list[str]) -> list[JSONValue]:
    # list is invariant: a list[str] is not a list[JSONValue] to mypy, though it is one.
    return list(items)
