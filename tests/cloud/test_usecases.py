"""The rules that lived only in HTTP routes hold when a use case is called directly, as the CLI,
the demo and any other transport call them: the plate-check-off confirmation, sign-up's
first-account rule, and the notification channels' rules."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tests.cloud.conftest import FakeClock, Seed

from printfleet.cloud.notify import OutboundPolicy
from printfleet.cloud.service import CloudService
from printfleet.cloud.store import (
    AlreadyExists,
    ChannelKind,
    JobRecord,
    NotFound,
    Store,
    new_id,
)
from printfleet.cloud.usecases.channels import MAX_CHANNELS_PER_USER
from printfleet.cloud.usecases.principal import (
    InvalidRequest,
    Principal,
    RegistrationClosed,
    Scope,
)
from printfleet.protocol.dispatch import JobView
from printfleet.protocol.issuer import CommandIssuer
from printfleet.protocol.lifecycle import JobState
from printfleet.protocol.signing import CommandSigner

SECRET = "use-case-test-secret-0123"
HOOK = "http://127.0.0.1:9/hook"


@pytest_asyncio.fixture
async def service(store: Store, clock: FakeClock) -> AsyncIterator[CloudService]:
    """The real service over the real store, with channels allowed to reach 127.0.0.1."""
    signer = CommandSigner.generate()
    yield CloudService(
        store,
        signer,
        CommandIssuer(signer, new_id),
        clock_ms=clock,
        outbound=OutboundPolicy(["127.0.0.1"]),
    )


def person(seed: Seed, *, other: bool = False) -> Principal:
    user = seed.other if other else seed.owner
    return Principal(user, frozenset({Scope.READ.value, Scope.WRITE.value}))


@pytest.mark.asyncio
async def test_the_plate_check_goes_off_only_when_the_owner_says_so_twice(
    service: CloudService, store: Store, seed: Seed
) -> None:
    owner, printer = person(seed), seed.printers[0].id
    with pytest.raises(InvalidRequest, match='"confirm": true'):
        await service.printers.set_plate_check(owner, printer, enabled=False)
    assert (await store.printers.get(printer)).plate_check is True
    assert [e.action for e in await store.audit.for_printer(printer)] == ["printer.created"]

    await service.printers.set_plate_check(owner, printer, enabled=False, confirmed=True)
    assert (await store.printers.get(printer)).plate_check is False
    actions = [e.action for e in await store.audit.for_printer(printer)]
    assert actions == ["printer.created", "printer.updated", "plate_check.off"]
    # Turning it back on needs no confirmation.
    await service.printers.set_plate_check(owner, printer, enabled=True)
    assert (await store.printers.get(printer)).plate_check is True


@pytest.mark.asyncio
async def test_only_the_first_account_signs_up_unless_registration_is_open(
    service: CloudService, store: Store
) -> None:
    assert not await store.accounts.has_users()
    first = await service.accounts.sign_up(
        "ada@example.org", "long enough", open_registration=False
    )
    assert await store.accounts.has_users()
    with pytest.raises(RegistrationClosed, match="registration is closed"):
        await service.accounts.sign_up("bob@example.org", "long enough", open_registration=False)
    await service.accounts.sign_up("bob@example.org", "long enough", open_registration=True)
    with pytest.raises(AlreadyExists, match="an account with this e-mail address exists"):
        await service.accounts.sign_up(first.email, "long enough", open_registration=True)


@pytest.mark.asyncio
async def test_channel_rules_hold_without_http(service: CloudService, seed: Seed) -> None:
    owner, other = person(seed), person(seed, other=True)
    channels = service.channels
    with pytest.raises(InvalidRequest, match="needs a secret"):
        await channels.add_channel(owner, ChannelKind.WEBHOOK, HOOK, None)
    with pytest.raises(InvalidRequest, match="only webhooks take a secret"):
        await channels.add_channel(owner, ChannelKind.APPRISE, "mailto://a@example.org", SECRET)
    with pytest.raises(InvalidRequest, match="loopback"):
        await channels.add_channel(owner, ChannelKind.WEBHOOK, "http://127.0.0.2/", SECRET)

    made = [
        await channels.add_channel(owner, ChannelKind.WEBHOOK, f"{HOOK}/{n}", SECRET)
        for n in range(MAX_CHANNELS_PER_USER)
    ]
    with pytest.raises(InvalidRequest, match=f"at most {MAX_CHANNELS_PER_USER} channels"):
        await channels.add_channel(owner, ChannelKind.WEBHOOK, HOOK, SECRET)
    # Another user's channel is as missing as one that never was.
    with pytest.raises(NotFound):
        await channels.delete_channel(other, made[0].id)
    with pytest.raises(NotFound):
        await channels.deliveries_of(other, made[0].id)
    assert (await channels.delete_channel(owner, made[0].id)).id == made[0].id
    assert len(await channels.channels_for(owner)) == MAX_CHANNELS_PER_USER - 1


@pytest.mark.asyncio
async def test_a_cancel_is_not_refused_because_the_dispatcher_wrote_the_job_meanwhile(
    service: CloudService, store: Store, seed: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = person(seed)
    upload = await store.files.create(
        seed.owner.id, name="cube.gcode", size=10, sha256=seed.sha256, storage_key="files/c"
    )
    created = await service.jobs.submit_job(
        owner, file_id=upload.id, printer_id=seed.printers[0].id
    )
    job_id = created.job.view.id
    record_terminal = store.jobs.record_terminal
    attempts: list[int] = []

    async def dispatcher_writes_first(view: JobView, **kwargs: Any) -> JobRecord:
        # Between the cancel's read and its write, the dispatcher saves the job (a new version).
        attempts.append(kwargs["expected_version"])
        if len(attempts) == 1:
            current = await store.jobs.load(job_id)
            await store.jobs.save(current.view, expected_version=current.version)
        return await record_terminal(view, **kwargs)

    monkeypatch.setattr(store.jobs, "record_terminal", dispatcher_writes_first)
    ended = await service.jobs.cancel_job(owner, job_id)
    assert ended.view.state is JobState.CANCELLED
    assert (await store.jobs.load(job_id)).view.state is JobState.CANCELLED
    assert attempts == [attempts[0], attempts[0] + 1]  # refused once, then read again
