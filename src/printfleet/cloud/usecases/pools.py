"""Pools as people keep them: named groups of printers to submit jobs to.

A pool is its creator's alone: nobody else sees it or submits to it. It may hold only printers
its creator may operate (owns, or holds an operator share of), checked whenever its printers
are set; a share lost later does not empty the pool, but the dispatcher starts a pool job only
where its submitter may operate the printer at that moment (S1), so a pool never widens anyone's
reach.
"""

from __future__ import annotations

from collections.abc import Collection

from printfleet.cloud.store import Actor, NotFound, PoolRecord, Role
from printfleet.cloud.usecases.ports import PoolRecords, PrinterRecords
from printfleet.cloud.usecases.principal import InvalidRequest, Principal, Scope, at_least

MAX_POOL_PRINTERS = 500
"""The most printers one pool may name."""


class PoolActions:
    """What people do with pools."""

    def __init__(self, *, pools: PoolRecords, printers: PrinterRecords) -> None:
        self.pools = pools
        self.printers = printers

    async def pools_for(self, principal: Principal) -> list[PoolRecord]:
        """The caller's pools, by name."""
        return await self.pools.for_owner(principal.user.id)

    async def pool(self, principal: Principal, pool_id: str) -> PoolRecord:
        """One of the caller's pools; anyone else's is NotFound, as a missing one is."""
        try:
            pool = await self.pools.get(pool_id)
        except NotFound:
            pool = None
        if pool is None or pool.owner_id != principal.user.id:
            raise NotFound(f"no pool {pool_id}")
        return pool

    async def create_pool(
        self, principal: Principal, *, name: str, printer_ids: Collection[str]
    ) -> PoolRecord:
        """Make a pool of printers the caller may operate."""
        principal.require(Scope.WRITE)
        await self._check_printers(principal, printer_ids)
        return await self.pools.create(principal.user.id, name, sorted(set(printer_ids)))

    async def update_pool(
        self,
        principal: Principal,
        pool_id: str,
        *,
        name: str | None = None,
        printer_ids: Collection[str] | None = None,
    ) -> PoolRecord:
        """Rename one of the caller's pools, or replace its printers (None: keep)."""
        principal.require(Scope.WRITE)
        await self.pool(principal, pool_id)
        if printer_ids is not None:
            await self._check_printers(principal, printer_ids)
            printer_ids = sorted(set(printer_ids))
        return await self.pools.update(
            pool_id, actor=Actor.user(principal.user.id), name=name, printer_ids=printer_ids
        )

    async def delete_pool(self, principal: Principal, pool_id: str) -> PoolRecord:
        """Delete one of the caller's pools, the pool as it was; refused (409) while jobs not
        yet ended target it."""
        principal.require(Scope.WRITE)
        pool = await self.pool(principal, pool_id)
        await self.pools.delete(pool_id, actor=Actor.user(principal.user.id))
        return pool

    async def usable_pool(self, principal: Principal, pool_id: str) -> PoolRecord:
        """A pool the caller may submit to: their own, with a printer they may still operate."""
        pool = await self.pool(principal, pool_id)
        for printer_id in pool.printer_ids:
            role = await self.printers.role_of(printer_id, principal.user.id)
            if role is not None and at_least(role, Role.OPERATOR):
                return pool
        raise InvalidRequest(f"you operate no printer of pool {pool.name!r}")

    async def _check_printers(self, principal: Principal, printer_ids: Collection[str]) -> None:
        if len(set(printer_ids)) > MAX_POOL_PRINTERS:
            raise InvalidRequest(f"a pool holds at most {MAX_POOL_PRINTERS} printers")
        for printer_id in sorted(set(printer_ids)):
            role = await self.printers.role_of(printer_id, principal.user.id)
            if role is None or not at_least(role, Role.OPERATOR):
                # The same words for a printer that does not exist and one the caller only
                # views or cannot see: a pool tells nobody what others own.
                raise NotFound(
                    f"you may not operate printer {printer_id!r}: a pool holds only printers "
                    "you own or operate through a share"
                )
