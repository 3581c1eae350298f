"""Users, API tokens, printers, shares and files in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from tests.cloud.conftest import T0, FakeClock, Seed

from printfleet.cloud.store import (
    Actor,
    AlreadyExists,
    FileMetadata,
    NotFound,
    PrinterAccess,
    Role,
    ShareRole,
    Store,
    new_id,
    token_digest,
)
from printfleet.cloud.store.models import ApiToken

DAY_MS = 24 * 3_600_000
LATER = T0 + DAY_MS
"""When the tokens made here expire, unless a test says otherwise."""

# ---------------------------------------------------------------------------------------------
# Users.


@pytest.mark.asyncio
async def test_users_are_found_by_id_and_by_email_in_any_case(
    store: Store, clock: FakeClock
) -> None:
    user = await store.accounts.create_user(
        " Ada@Example.ORG ", display_name="Ada", password_hash="$argon2id$v=19$..."
    )
    assert (user.email, user.display_name, user.created_at) == ("ada@example.org", "Ada", T0)
    assert user.password_hash == "$argon2id$v=19$..."
    assert await store.accounts.get_user(user.id) == user
    assert await store.accounts.user_by_email("ADA@example.org") == user
    assert await store.accounts.user_by_email("bob@example.org") is None
    with pytest.raises(NotFound):
        await store.accounts.get_user(new_id())


@pytest.mark.asyncio
async def test_an_email_address_is_taken_once(store: Store) -> None:
    await store.accounts.create_user("ada@example.org", display_name="Ada", password_hash="h")
    with pytest.raises(AlreadyExists):
        await store.accounts.create_user("ADA@example.org", display_name="Ada 2", password_hash="h")


# ---------------------------------------------------------------------------------------------
# API tokens.


@pytest.mark.asyncio
async def test_a_token_is_kept_only_as_its_digest(store: Store, seed: Seed) -> None:
    token = "pf_" + "s3cr3t" * 8
    record = await store.accounts.create_token(
        seed.owner.id,
        name="laptop",
        token=token,
        scopes=["jobs:write", "jobs:read", "jobs:read"],
        expires_at=LATER,
    )
    assert (
        record.name,
        record.scopes,
        record.last_used_at,
        record.revoked_at,
        record.expires_at,
    ) == ("laptop", ("jobs:read", "jobs:write"), None, None, LATER)
    async with store.engine.connect() as connection:
        stored = (await connection.execute(select(ApiToken.__table__))).one()._asdict()
    assert stored["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert stored["token_sha256"] == token_digest(token)
    assert token not in {str(value) for value in stored.values()}


@pytest.mark.asyncio
async def test_authentication_notes_use_at_most_once_a_minute(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    record = await store.accounts.create_token(
        seed.owner.id, name="ci", token="t-1", scopes=[], expires_at=LATER
    )
    assert await store.accounts.authenticate_token("t-2") is None

    used = await store.accounts.authenticate_token("t-1")
    assert used is not None
    assert (used.id, used.user_id, used.last_used_at) == (record.id, seed.owner.id, T0)

    clock.advance(30_000)
    again = await store.accounts.authenticate_token("t-1")
    assert again is not None
    assert again.last_used_at == T0
    clock.advance(30_000)
    later = await store.accounts.authenticate_token("t-1")
    assert later is not None
    assert later.last_used_at == T0 + 60_000
    [listed] = await store.accounts.tokens_for_user(seed.owner.id)
    assert listed == later


@pytest.mark.asyncio
async def test_a_revoked_token_no_longer_authenticates(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    first = await store.accounts.create_token(
        seed.owner.id, name="a", token="t-a", scopes=["x"], expires_at=LATER
    )
    clock.advance(1)
    second = await store.accounts.create_token(
        seed.owner.id, name="b", token="t-b", scopes=["x"], expires_at=LATER
    )
    revoked = await store.accounts.revoke_token(first.id)
    assert revoked.revoked_at == clock.now
    clock.advance(1_000)
    assert (await store.accounts.revoke_token(first.id)).revoked_at == revoked.revoked_at
    assert await store.accounts.authenticate_token("t-a") is None
    assert await store.accounts.authenticate_token("t-b") is not None
    assert [token.id for token in await store.accounts.tokens_for_user(seed.owner.id)] == [
        first.id,
        second.id,
    ]
    with pytest.raises(NotFound):
        await store.accounts.revoke_token(new_id())


@pytest.mark.asyncio
async def test_an_expired_token_is_returned_to_be_refused_and_not_noted_as_used(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    record = await store.accounts.create_token(
        seed.owner.id, name="ci", token="t-1", scopes=[], expires_at=T0 + 60_000
    )
    assert not record.expired(T0 + 59_999)
    clock.advance(60_000)
    expired = await store.accounts.authenticate_token("t-1")
    assert expired is not None
    assert expired.expired(clock.now)
    # Presented after its end, it was not used: the listing keeps the last real use (none).
    [listed] = await store.accounts.tokens_for_user(seed.owner.id)
    assert listed.last_used_at is None
    assert listed.expires_at == T0 + 60_000


@pytest.mark.asyncio
async def test_one_digest_one_token(store: Store, seed: Seed) -> None:
    await store.accounts.create_token(
        seed.owner.id, name="a", token="same", scopes=[], expires_at=LATER
    )
    with pytest.raises(AlreadyExists):
        await store.accounts.create_token(
            seed.other.id, name="b", token="same", scopes=[], expires_at=LATER
        )


# ---------------------------------------------------------------------------------------------
# Printers and shares.


@pytest.mark.asyncio
async def test_printers_are_provisioned_once_per_id_and_broker_user(
    store: Store, seed: Seed
) -> None:
    [p1, p2] = seed.printers
    assert (p1.id, p1.owner_id, p1.name, p1.model, p1.broker_username) == (
        "p1",
        seed.owner.id,
        "P1",
        "mk4",
        "broker-p1",
    )
    assert (p1.plate_check, p1.cloud_enabled, p1.broker_password_hash, p1.created_at) == (
        True,
        True,
        "bh",
        T0,
    )
    assert await store.printers.get("p1") == p1
    assert await store.printers.all() == [p1, p2]
    with pytest.raises(AlreadyExists):
        await store.printers.create(
            "p1", owner_id=seed.other.id, name="x", model="mk4", broker_username="new",
            broker_password_hash="h",
        )  # fmt: skip
    with pytest.raises(AlreadyExists):
        await store.printers.create(
            "p3", owner_id=seed.other.id, name="x", model="mk4", broker_username="broker-p1",
            broker_password_hash="h",
        )  # fmt: skip
    with pytest.raises(NotFound):
        await store.printers.create(
            "p4", owner_id=new_id(), name="x", model="mk4", broker_username="b4",
            broker_password_hash="h",
        )  # fmt: skip
    with pytest.raises(NotFound):
        await store.printers.get("p9")
    [created] = await store.audit.for_printer("p1")
    assert (created.action, created.actor) == ("printer.created", Actor.user(seed.owner.id))


@pytest.mark.asyncio
async def test_turning_the_plate_check_off_is_audited(
    store: Store, seed: Seed, clock: FakeClock
) -> None:
    owner = Actor.user(seed.owner.id)
    clock.advance(1_000)
    updated = await store.printers.update("p1", actor=owner, plate_check=False, name="Left")
    assert (updated.plate_check, updated.name, updated.cloud_enabled) == (False, "Left", True)
    assert await store.printers.get("p1") == updated
    # Setting what is already set changes nothing and logs nothing.
    await store.printers.update("p1", actor=owner, plate_check=False, cloud_enabled=True)
    entries = await store.audit.for_printer("p1")
    assert [(entry.action, entry.detail, entry.at) for entry in entries[1:]] == [
        ("printer.updated", {"name": "Left", "plate_check": False}, T0 + 1_000)
    ]
    disabled = await store.printers.update("p1", actor=owner, cloud_enabled=False)
    assert not disabled.cloud_enabled
    with pytest.raises(NotFound):
        await store.printers.update("p9", actor=owner, plate_check=False)


@pytest.mark.asyncio
async def test_a_user_sees_the_printers_it_owns_or_shares(store: Store, seed: Seed) -> None:
    [p1, p2] = seed.printers
    owner, other = seed.owner.id, seed.other.id
    assert await store.printers.for_user(owner) == [
        PrinterAccess(p1, Role.OWNER),
        PrinterAccess(p2, Role.OWNER),
    ]
    assert await store.printers.for_user(other) == []
    assert await store.printers.role_of("p1", other) is None

    await store.printers.share("p2", other, ShareRole.OPERATOR, actor=Actor.user(owner))
    assert await store.printers.for_user(other) == [PrinterAccess(p2, Role.OPERATOR)]
    # Sharing again replaces the role.
    await store.printers.share("p2", other, ShareRole.VIEWER, actor=Actor.user(owner))
    assert await store.printers.for_user(other) == [PrinterAccess(p2, Role.VIEWER)]
    assert await store.printers.role_of("p2", other) is Role.VIEWER
    assert await store.printers.role_of("p2", owner) is Role.OWNER
    assert await store.printers.role_of("p9", owner) is None
    # The owner's view is unchanged by the share.
    assert [access.role for access in await store.printers.for_user(owner)] == [Role.OWNER] * 2

    assert await store.printers.unshare("p2", other, actor=Actor.user(owner))
    assert not await store.printers.unshare("p2", other, actor=Actor.user(owner))
    assert await store.printers.for_user(other) == []
    actions = [entry.action for entry in await store.audit.for_printer("p2")]
    assert actions == ["printer.created", "printer.shared", "printer.shared", "printer.unshared"]


@pytest.mark.asyncio
async def test_shares_need_a_printer_a_user_and_not_the_owner(store: Store, seed: Seed) -> None:
    owner = Actor.user(seed.owner.id)
    with pytest.raises(ValueError, match="owner"):
        await store.printers.share("p1", seed.owner.id, ShareRole.VIEWER, actor=owner)
    with pytest.raises(NotFound):
        await store.printers.share("p9", seed.other.id, ShareRole.VIEWER, actor=owner)
    with pytest.raises(NotFound):
        await store.printers.share("p1", new_id(), ShareRole.VIEWER, actor=owner)


# ---------------------------------------------------------------------------------------------
# Files.


@pytest.mark.asyncio
async def test_files_keep_their_metadata(store: Store, seed: Seed, clock: FakeClock) -> None:
    metadata = FileMetadata(estimated_s=5_400, layers=250, filament_mm=3_150.5, has_thumbnail=True)
    first = await store.files.create(
        seed.owner.id,
        name="benchy.gcode",
        size=1_234_567,
        sha256=seed.sha256,
        storage_key="files/a",
        metadata=metadata,
    )
    clock.advance(1)
    bare = await store.files.create(
        seed.owner.id, name="cube.gcode", size=10, sha256="cd" * 32, storage_key="files/b"
    )
    assert (first.name, first.size, first.sha256, first.storage_key, first.metadata) == (
        "benchy.gcode",
        1_234_567,
        seed.sha256,
        "files/a",
        metadata,
    )
    assert bare.metadata == FileMetadata()
    assert await store.files.get(first.id) == first
    assert await store.files.get(bare.id) == bare
    assert await store.files.for_owner(seed.owner.id) == [bare, first]
    assert await store.files.for_owner(seed.other.id) == []
    assert await store.files.by_id([first.id, bare.id, new_id()]) == {
        first.id: first,
        bare.id: bare,
    }
    with pytest.raises(NotFound):
        await store.files.get(new_id())
    with pytest.raises(AlreadyExists):
        await store.files.create(
            seed.other.id, name="x", size=1, sha256=seed.sha256, storage_key="files/a"
        )


@pytest.mark.asyncio
async def test_a_whole_number_of_millimetres_reads_back_as_a_float(
    store: Store, seed: Seed
) -> None:
    created = await store.files.create(
        seed.owner.id,
        name="x.gcode",
        size=1,
        sha256=seed.sha256,
        storage_key="k",
        metadata=FileMetadata(filament_mm=3.0),
    )
    loaded = await store.files.get(created.id)
    assert loaded.metadata.filament_mm == 3.0
    assert isinstance(loaded.metadata.filament_mm, float)
