"""``GET /api/v1/events`` on the real app (uvicorn, SQLite and PostgreSQL): each user's own
stream, resuming with ``Last-Event-ID``, and streams living alongside the API's admission
control.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.cloud.test_api import api_database_url, bearer, serving, settings_for, sign_up
from tests.cloud.test_e2e_jobs import EventFeed

from printfleet.cloud.notify import Notification, NotificationKind
from printfleet.testing import MosquittoBroker

__all__ = ["api_database_url"]  # a fixture, used by name


def _note(user_id: str, title: str) -> Notification:
    return Notification.create(
        NotificationKind.TEST, title=title, message="for the stream", user_ids=[user_id]
    )


async def _first_blocks(lines: AsyncIterator[str], count: int) -> list[str]:
    """The stream's lines up to the end of its ``count``-th block with an ``id:``."""
    seen: list[str] = []
    ids = 0
    async for line in lines:
        seen.append(line)
        ids += line.startswith("id: ")
        if ids == count and not line:
            break
    return seen


@pytest.mark.asyncio
async def test_each_user_streams_their_own_and_resumes_where_they_left(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with serving(settings_for(tmp_path, api_database_url, mosquitto.url)) as cloud:
        client = cloud.client
        alice = await sign_up(client, "alice@example.org")
        bob = await sign_up(client, "bob@example.org")
        anonymous = await client.get("/api/v1/events")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")

        announcer = cloud.context.announcer
        assert announcer is not None
        user = await cloud.context.store.accounts.user_by_email("alice@example.org")
        assert user is not None
        first, second = _note(user.id, "one"), _note(user.id, "two")
        async with EventFeed(client, alice).open() as feed, EventFeed(client, bob).open() as other:
            await announcer.send(first, to_channels=False)
            await announcer.send(second, to_channels=False)
            await feed.wait_for("test", where=lambda e: e["id"] == second.id)
        assert [e["id"] for e in feed.events] == [first.id, second.id]
        assert other.events == []

        # Back after the first: the second is replayed, the first is not.
        headers = {**bearer(alice), "Last-Event-ID": first.id}
        async with client.stream("GET", "/api/v1/events", headers=headers) as response:
            assert response.status_code == 200
            replayed = await _first_blocks(response.aiter_lines(), 1)
        assert f"id: {second.id}" in replayed
        assert f"id: {first.id}" not in replayed


@pytest.mark.asyncio
async def test_open_streams_do_not_take_the_api_s_admission_slots(
    api_database_url: str, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    # One request at a time: a stream holding that slot for its lifetime would shut everyone
    # out of the API for as long as a dashboard stays open.
    settings = settings_for(tmp_path, api_database_url, mosquitto.url, max_concurrent_requests=1)
    async with serving(settings) as cloud:
        token = await sign_up(cloud.client, "alice@example.org")
        async with EventFeed(cloud.client, token).open(), EventFeed(cloud.client, token).open():
            for _ in range(3):
                listed = await cloud.client.get("/api/v1/printers", headers=bearer(token))
                assert listed.status_code == 200, listed.text
