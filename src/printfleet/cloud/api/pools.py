"""Pools: named groups of printers to submit jobs to ("any printer of this pool I may operate").

A pool is its creator's: other users neither see nor use it (404). It may hold only printers
its creator owns or operates through a share (422 otherwise, in the same words whether the
printer is someone else's or does not exist). A pool that jobs not yet ended target cannot be
deleted (409): cancel them or let them end first. The rules are the pool use cases'
(``cloud/usecases/pools.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, status

from printfleet.cloud.api.auth import Reader, Writer
from printfleet.cloud.api.context import Context
from printfleet.cloud.api.errors import ERROR_RESPONSES, error_responses
from printfleet.cloud.api.schemas import NewPool, PoolOut

router = APIRouter(prefix="/api/v1", tags=["pools"], responses=ERROR_RESPONSES)


@router.get("/pools")
async def list_pools(principal: Reader, context: Context) -> list[PoolOut]:
    """The caller's pools, by name."""
    return [PoolOut.of(pool) for pool in await context.service.pools.pools_for(principal)]


@router.post("/pools", status_code=status.HTTP_201_CREATED, responses=error_responses(409))
async def create_pool(body: NewPool, principal: Writer, context: Context) -> PoolOut:
    """Make a pool of printers you own or operate; 409 if you have a pool of that name."""
    pool = await context.service.pools.create_pool(
        principal, name=body.name, printer_ids=body.printer_ids
    )
    return PoolOut.of(pool)


@router.get("/pools/{pool_id}")
async def get_pool(pool_id: str, principal: Reader, context: Context) -> PoolOut:
    """One of the caller's pools."""
    return PoolOut.of(await context.service.pools.pool(principal, pool_id))


@router.put("/pools/{pool_id}", responses=error_responses(409))
async def replace_pool(pool_id: str, body: NewPool, principal: Writer, context: Context) -> PoolOut:
    """Rename a pool and replace its printers (jobs waiting for it then use the new ones)."""
    pool = await context.service.pools.update_pool(
        principal, pool_id, name=body.name, printer_ids=body.printer_ids
    )
    return PoolOut.of(pool)


@router.delete("/pools/{pool_id}", responses=error_responses(409))
async def delete_pool(pool_id: str, principal: Writer, context: Context) -> PoolOut:
    """Delete a pool (the answer is the pool as it was); 409 while jobs not yet ended target
    it."""
    return PoolOut.of(await context.service.pools.delete_pool(principal, pool_id))
