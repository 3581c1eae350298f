"""A farm's queue in the store, on SQLite and PostgreSQL: jobs with a pool, requirements, a
priority and a wait code; copies in one batch under one idempotency key; pools and what the
dispatcher's roster reads of them; the migration that adds all this to existing data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from tests.cloud.conftest import FakeClock, Seed
from tests.cloud.test_store_migrations import run_on

from printfleet.cloud.dispatch.store_jobs import StoreRoster
from printfleet.cloud.migrations import downgrade, upgrade
from printfleet.cloud.store import (
    Actor,
    AlreadyExists,
    IdempotencyMismatch,
    NotFound,
    StateConflict,
    Store,
    open_store,
)
from printfleet.cloud.store.stats import JobHistory
from printfleet.cloud.usecases.stats import NO_POOL, CostRates, GroupBy, summarize
from printfleet.protocol.dispatch import JobView, Requirements, WaitCode, cancel
from printfleet.protocol.lifecycle import JobState

HOUR = 3_600_000
PETG = Requirements(material="PETG", nozzle_um=400)


async def pool_job(
    store: Store,
    seed: Seed,
    pool_id: str,
    *,
    requirements: Requirements = PETG,
    priority: int = 0,
) -> JobView:
    created = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=HOUR * 100,
        pool_id=pool_id,
        requirements=requirements,
        priority=priority,
    )
    return created.job.view


@pytest.mark.asyncio
async def test_a_job_keeps_its_pool_requirements_priority_and_wait_code(
    store: Store, seed: Seed
) -> None:
    pool = await store.pools.create(seed.owner.id, "petg farm", ["p1", "p2"])
    view = await pool_job(store, seed, pool.id, requirements=PETG, priority=7)
    loaded = await store.jobs.load(view.id)
    assert (loaded.view.pool_id, loaded.view.requirements, loaded.view.priority) == (
        pool.id,
        PETG,
        7,
    )
    assert loaded.view.model is None
    assert loaded.view.printer_id is None
    assert loaded.view.wait is None
    waiting = replace(
        loaded.view, wait=WaitCode.MATERIAL_MISMATCH, reason="no idle printer with PETG"
    )
    saved = await store.jobs.save(waiting, expected_version=loaded.version)
    assert saved.view.wait is WaitCode.MATERIAL_MISMATCH
    assert (await store.jobs.load(view.id)).view.wait is WaitCode.MATERIAL_MISMATCH
    # Requirements and the pool are fixed at creation; a save does not move them.
    moved = replace(saved.view, requirements=Requirements(), pool_id=None, priority=9)
    again = await store.jobs.save(moved, expected_version=saved.version)
    assert (again.view.requirements, again.view.pool_id, again.view.priority) == (
        PETG,
        pool.id,
        9,
    )


@pytest.mark.asyncio
async def test_a_pool_job_names_no_printer_or_model(store: Store, seed: Seed) -> None:
    pool = await store.pools.create(seed.owner.id, "farm", ["p1"])
    for printer_id, model in (("p1", None), (None, "mk4")):
        with pytest.raises(ValueError, match="names no printer"):
            await store.jobs.create(
                seed.owner.id,
                sha256=seed.sha256,
                start_by=HOUR,
                pool_id=pool.id,
                printer_id=printer_id,
                model=model,
            )
    assert await store.jobs.for_owner(seed.owner.id) == []


@pytest.mark.asyncio
async def test_copies_are_one_batch_made_at_once_and_retried_as_one(
    store: Store, seed: Seed
) -> None:
    first = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=HOUR,
        model="mk4",
        name="bracket",
        copies=3,
        idempotency_key="k1",
    )
    assert first.created
    batch = first.job.batch_id
    assert batch is not None
    copies = await store.jobs.for_owner(seed.owner.id, batch_id=batch)
    # Newest first; each copy a millisecond after the one before it.
    assert [job.name for job in reversed(copies)] == [
        "bracket (1/3)",
        "bracket (2/3)",
        "bracket (3/3)",
    ]
    assert [(job.copy_index, job.copies) for job in reversed(copies)] == [(1, 3), (2, 3), (3, 3)]
    assert copies[-1].view.id == first.job.view.id
    assert len({job.view.created_at for job in copies}) == 3

    retried = await store.jobs.create(
        seed.owner.id,
        sha256=seed.sha256,
        start_by=HOUR + 5,
        model="mk4",
        name="bracket",
        copies=3,
        idempotency_key="k1",
    )
    assert not retried.created
    assert retried.job.view.id == first.job.view.id
    assert len(await store.jobs.for_owner(seed.owner.id)) == 3
    with pytest.raises(IdempotencyMismatch):
        await store.jobs.create(
            seed.owner.id,
            sha256=seed.sha256,
            start_by=HOUR,
            model="mk4",
            name="bracket",
            copies=4,
            idempotency_key="k1",
        )
    assert len(await store.jobs.for_owner(seed.owner.id)) == 3
    audit = [
        entry
        for job in copies
        for entry in await store.audit.for_job(job.view.id)
        if entry.action == "job.created"
    ]
    assert len(audit) == 3
    assert {entry.detail["batch_id"] for entry in audit} == {batch}


@pytest.mark.asyncio
async def test_a_single_job_has_no_batch(store: Store, seed: Seed) -> None:
    created = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=HOUR, printer_id="p1", name="part"
    )
    job = created.job
    assert (job.name, job.batch_id, job.copy_index, job.copies) == ("part", None, None, None)


@pytest.mark.asyncio
async def test_pools_are_named_per_owner_and_hold_printers(store: Store, seed: Seed) -> None:
    pool = await store.pools.create(seed.owner.id, "left wall", ["p2", "p1"])
    assert pool.printer_ids == ("p1", "p2")
    with pytest.raises(AlreadyExists):
        await store.pools.create(seed.owner.id, "left wall", [])
    # Another owner may use the same name.
    theirs = await store.pools.create(seed.other.id, "left wall", [])
    assert [p.id for p in await store.pools.for_owner(seed.owner.id)] == [pool.id]
    assert [p.id for p in await store.pools.for_owner(seed.other.id)] == [theirs.id]
    with pytest.raises(NotFound):
        await store.pools.create(seed.owner.id, "ghosts", ["no-such-printer"])

    actor = Actor.user(seed.owner.id)
    renamed = await store.pools.update(pool.id, actor=actor, name="right wall", printer_ids=["p2"])
    assert (renamed.name, renamed.printer_ids) == ("right wall", ("p2",))
    assert (await store.pools.get(pool.id)).printer_ids == ("p2",)
    assert await store.pools.memberships() == {"p2": frozenset({pool.id})}
    assert await store.pools.of_printers(seed.owner.id) == {"p2": (pool.id,)}
    assert await store.pools.of_printers(seed.other.id) == {}


@pytest.mark.asyncio
async def test_a_pool_that_open_jobs_target_cannot_be_deleted(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    pool = await store.pools.create(seed.owner.id, "farm", ["p1"])
    view = await pool_job(store, seed, pool.id)
    actor = Actor.user(seed.owner.id)
    with pytest.raises(StateConflict, match="1 jobs not yet ended"):
        await store.pools.delete(pool.id, actor=actor)
    assert (await store.pools.get(pool.id)).printer_ids == ("p1",)

    record = await store.jobs.load(view.id)
    await store.jobs.record_terminal(
        cancel(record.view).job, expected_version=record.version, actor=actor
    )
    await store.pools.delete(pool.id, actor=actor)
    with pytest.raises(NotFound):
        await store.pools.get(pool.id)
    # The ended job keeps its history; its pool is gone.
    assert (await store.jobs.load(view.id)).view.pool_id is None
    with pytest.raises(NotFound):
        await store.pools.delete(pool.id, actor=actor)


@pytest.mark.asyncio
async def test_the_roster_reads_pools_and_print_hours(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    pool = await store.pools.create(seed.owner.id, "farm", ["p1"])
    created = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=clock.now + HOUR, printer_id="p2"
    )
    job = created.job
    started = replace(job.view, state=JobState.PRINTING, assigned_printer="p2")
    saved = await store.jobs.save(started, expected_version=job.version)
    await store.audit.append(
        Actor.system("dispatcher"),
        "start:sent",
        printer_id="p2",
        job_id=job.view.id,
        command_id=None,
        detail={},
    )
    clock.advance(HOUR * 3 // 2)
    await store.jobs.record_terminal(
        replace(saved.view, state=JobState.COMPLETED),
        expected_version=saved.version,
        actor=Actor.printer("p2"),
    )
    now = [0.0]
    roster = await StoreRoster(store, refresh_s=60, monotonic=lambda: now[0]).roster()
    assert roster["p1"].pools == frozenset({pool.id})
    assert roster["p2"].pools == frozenset()
    assert roster["p2"].print_hours == pytest.approx(1.5)
    assert roster["p1"].print_hours == 0.0


@pytest.mark.asyncio
async def test_the_roster_sums_print_hours_again_only_after_its_interval(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    now = [0.0]
    roster = StoreRoster(store, refresh_s=60, monotonic=lambda: now[0])
    assert (await roster.roster())["p1"].print_hours == 0.0
    created = await store.jobs.create(
        seed.owner.id, sha256=seed.sha256, start_by=clock.now + HOUR, printer_id="p1"
    )
    job = created.job
    saved = await store.jobs.save(
        replace(job.view, state=JobState.PRINTING, assigned_printer="p1"),
        expected_version=job.version,
    )
    await store.audit.append(
        Actor.system("dispatcher"),
        "start:sent",
        printer_id="p1",
        job_id=job.view.id,
        command_id=None,
        detail={},
    )
    clock.advance(HOUR)
    await store.jobs.record_terminal(
        replace(saved.view, state=JobState.FAILED),
        expected_version=saved.version,
        actor=Actor.printer("p1"),
    )
    now[0] = 59.0
    assert (await roster.roster())["p1"].print_hours == 0.0
    now[0] = 60.0
    assert (await roster.roster())["p1"].print_hours == pytest.approx(1.0)


_AT_0003 = [
    (
        "INSERT INTO users (id, email, display_name, password_hash, created_at) "
        "VALUES ('u1', 'a@example.org', 'A', 'h', 1)"
    ),
    (
        "INSERT INTO printers (id, owner_id, name, model, broker_username, "
        "broker_password_hash, plate_check, cloud_enabled, created_at) "
        "VALUES ('p1', 'u1', 'P1', 'mk4', 'b1', 'h', true, true, 1)"
    ),
    (
        "INSERT INTO jobs (id, created_at, start_by, state, sha256, printer_id, reason, "
        "owner_id, name, notify_completion, version) "
        "VALUES ('j1', 1, 2, 'queued', 'ab', 'p1', '', 'u1', 'part', false, 1)"
    ),
    (
        "INSERT INTO alerts (id, printer_id, job_id, kind, severity, message, created_at) "
        "VALUES ('a1', 'p1', 'j1', 'thermal', 'critical', 'hot', 1)"
    ),
]


def _write_at_0003(connection: Connection) -> None:
    for statement in _AT_0003:
        connection.execute(text(statement))
    connection.commit()


def _alert_job(connection: Connection) -> object:
    return connection.execute(text("SELECT job_id FROM alerts WHERE id = 'a1'")).scalar()


@pytest.mark.asyncio
async def test_the_migration_keeps_jobs_and_their_alerts(database_url: str) -> None:
    # Data written at revision 0003 survives the upgrade (SQLite rebuilds ``jobs``) and the
    # downgrade back; alerts keep the job they are about.
    await upgrade(database_url, "0003")
    await run_on(database_url, _write_at_0003)
    await upgrade(database_url)
    async with await open_store(database_url) as store:
        job = await store.jobs.load("j1")
        assert (job.view.priority, job.view.pool_id, job.view.requirements) == (
            0,
            None,
            Requirements(),
        )
        assert [alert.job_id for alert in await store.alerts.latest(printer_ids=["p1"])] == ["j1"]
    await downgrade(database_url, "0003")
    assert await run_on(database_url, _alert_job) == "j1"


@pytest.mark.asyncio
async def test_statistics_group_by_the_readers_own_pools(store: Store, seed: Seed) -> None:
    mine = await store.pools.create(seed.owner.id, "farm", ["p1"])
    theirs = await store.pools.create(seed.other.id, "secret name", ["p1"])
    ends = []
    for owner, pool_id in ((seed.owner.id, mine.id), (seed.other.id, theirs.id)):
        created = await store.jobs.create(
            owner, sha256=seed.sha256, start_by=HOUR * 100, pool_id=pool_id
        )
        job = created.job
        ended = await store.jobs.record_terminal(
            cancel(job.view).job, expected_version=job.version, actor=Actor.user(owner)
        )
        ends.append(ended)
    # The other user's job ran on the owner's printer, so the owner sees it, but not its pool.
    await store.jobs.save(
        replace(ends[1].view, assigned_printer="p1"), expected_version=ends[1].version
    )
    rows = await JobHistory(store.database).ended_jobs(seed.owner.id)
    assert sorted((row.submitter_id, row.pool_name) for row in rows) == sorted(
        [(seed.owner.id, "farm"), (seed.other.id, None)]
    )
    report = summarize(rows, by=GroupBy.POOL, rates=CostRates())
    assert sorted(group.key for group in report.groups) == sorted(["farm", NO_POOL])
    theirs_only = await JobHistory(store.database).ended_jobs(seed.other.id)
    assert [row.pool_name for row in theirs_only] == ["secret name"]
