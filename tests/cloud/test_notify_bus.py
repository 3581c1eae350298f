"""The event bus on its own, then server-sent events through a real uvicorn server and httpx."""

import asyncio
import contextlib
import json
from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
from tests.cloud.test_notify_support import (
    assert_is,
    eventually,
    next_event,
    sse_blocks,
    sse_server,
    subscribed,
)

from printfleet.cloud.notify import (
    EventBus,
    Notification,
    NotificationKind,
    SubscriptionClosed,
    TooManySubscribersError,
)


@pytest.fixture(autouse=True)
def no_blocking_calls() -> Iterator[BlockBuster]:
    """A blocking call made inside the event loop fails the test (threads are fine)."""
    with blockbuster_ctx() as blockbuster:
        yield blockbuster


def note(label: str, *users: str, blob: str = "") -> Notification:
    return Notification.create(
        NotificationKind.PRINTER_STATE,
        title=f"State {label}",
        message=f"Printer p1 reports {label}",
        user_ids=users or ("alice",),
        printer_id="p1",
        data={"label": label, "blob": blob},
    )


# ---------------------------------------------------------------------------------------------
# The bus.


@pytest.mark.asyncio
async def test_subscribers_get_their_users_notifications_in_order() -> None:
    bus = EventBus()
    async with bus.subscribe("alice") as alice, bus.subscribe("bob") as bob:
        sent = [note("1", "alice"), note("2", "bob"), note("3", "alice", "bob"), note("4", "eve")]
        for notification in sent:
            assert bus.publish(notification)
        assert [await alice.receive() for _ in range(2)] == [sent[0], sent[2]]
        assert [await bob.receive() for _ in range(2)] == [sent[1], sent[2]]
        assert len(alice) == len(bob) == 0
    assert bus.stats.published == 4
    assert bus.stats.delivered == 4


@pytest.mark.asyncio
async def test_a_repeated_id_is_published_once() -> None:
    bus = EventBus()
    notification = note("1")
    async with bus.subscribe("alice") as alice:
        assert bus.publish(notification)
        assert not bus.publish(notification)
        assert len(alice) == 1
    assert bus.stats.duplicates == 1


@pytest.mark.asyncio
async def test_a_slow_subscriber_loses_its_oldest_and_never_holds_up_the_rest() -> None:
    bus = EventBus(queue_size=4)
    sent = [note(str(i)) for i in range(10)]
    async with bus.subscribe("alice") as slow, bus.subscribe("alice") as fast:

        async def read_fast() -> list[Notification]:
            return [await fast.receive() for _ in sent]

        reader = asyncio.create_task(read_fast())
        for notification in sent:
            bus.publish(notification)  # never waits, whoever is behind
            await asyncio.sleep(0)  # let the fast reader run, as a live loop would
        assert await reader == sent
        assert fast.dropped == 0
        assert len(slow) == 4
        assert slow.dropped == 6
        assert slow.take_dropped() == 6
        assert slow.take_dropped() == 0
        assert [await slow.receive() for _ in range(4)] == sent[-4:]
    assert bus.stats.dropped == 6


@pytest.mark.asyncio
async def test_subscriptions_are_removed_on_exit_and_limited_per_user() -> None:
    bus = EventBus(max_subscribers_per_user=2)
    async with bus.subscribe("alice"), bus.subscribe("alice"):
        assert bus.subscriber_count("alice") == 2
        assert not bus.has_room_for("alice")
        assert bus.has_room_for("bob")
        with pytest.raises(TooManySubscribersError):
            async with bus.subscribe("alice"):
                pass
    assert bus.subscriber_count() == 0
    bus.publish(note("after"))  # nobody listens: nothing queued anywhere


@pytest.mark.asyncio
async def test_resuming_replays_what_the_user_missed() -> None:
    bus = EventBus(history_size=5)
    sent = [note("1"), note("2", "bob"), note("3"), note("4"), note("5", "bob")]
    for notification in sent:
        bus.publish(notification)
    async with bus.subscribe("alice", last_event_id=sent[0].id) as alice:
        assert alice.resumed is True
        assert [await alice.receive() for _ in range(2)] == [sent[2], sent[3]]
        assert len(alice) == 0
    bus.publish(note("6"))  # the ring is full: the oldest, sent[0], is forgotten
    async with bus.subscribe("alice", last_event_id=sent[0].id) as alice:
        assert alice.resumed is False
        assert len(alice) == 0
    async with bus.subscribe("alice") as alice:
        assert alice.resumed is None


@pytest.mark.asyncio
async def test_closing_the_bus_ends_every_subscription() -> None:
    bus = EventBus()
    async with bus.subscribe("alice") as alice:

        async def drain() -> list[Notification]:
            return [notification async for notification in alice]

        reader = asyncio.create_task(drain())
        bus.publish(note("1"))
        bus.close()
        assert [n.message for n in await reader] == ["Printer p1 reports 1"]
        with pytest.raises(SubscriptionClosed):
            await alice.receive()
    async with bus.subscribe("alice") as late:
        assert late.closed


@pytest.mark.asyncio
async def test_a_timed_out_receive_loses_nothing() -> None:
    bus = EventBus()
    async with bus.subscribe("alice") as alice:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await alice.receive()
        bus.publish(sent := note("1"))
        assert await alice.receive() == sent


# ---------------------------------------------------------------------------------------------
# Server-sent events over HTTP.


@pytest.mark.asyncio
async def test_events_arrive_in_order_and_users_see_only_their_own() -> None:
    bus = EventBus()
    async with (
        sse_server(bus) as client,
        client.stream("GET", "/events", params={"user": "alice"}) as alice_response,
        client.stream("GET", "/events", params={"user": "bob"}) as bob_response,
        contextlib.aclosing(sse_blocks(alice_response)) as alice,
        contextlib.aclosing(sse_blocks(bob_response)) as bob,
        asyncio.timeout(10),
    ):
        assert alice_response.status_code == 200
        assert alice_response.headers["content-type"].startswith("text/event-stream")
        assert alice_response.headers["cache-control"] == "no-cache"
        await subscribed(alice)
        await subscribed(bob)
        sent = [note(f"{i}", *(("alice",), ("bob",), ("alice", "bob"))[i % 3]) for i in range(30)]
        for notification in sent:
            bus.publish(notification)
        for notification in [n for n in sent if "alice" in n.user_ids]:
            assert_is(await next_event(alice), notification)
        for notification in [n for n in sent if "bob" in n.user_ids]:
            assert_is(await next_event(bob), notification)


@pytest.mark.asyncio
async def test_a_quiet_stream_sends_keep_alives() -> None:
    bus = EventBus()
    async with (
        sse_server(bus, keepalive_s=0.05) as client,
        client.stream("GET", "/events", params={"user": "alice"}) as response,
        contextlib.aclosing(sse_blocks(response)) as blocks,
        asyncio.timeout(10),
    ):
        await subscribed(blocks)
        assert (await anext(blocks)).comments == ["keep-alive"]
        bus.publish(sent := note("after a pause"))
        assert_is(await next_event(blocks), sent)


@pytest.mark.asyncio
async def test_last_event_id_resumes_or_asks_for_a_resync() -> None:
    bus = EventBus(history_size=4)
    sent = [note(str(i)) for i in range(4)]
    for notification in sent:
        bus.publish(notification)
    async with sse_server(bus) as client, asyncio.timeout(10):
        headers = {"Last-Event-ID": sent[1].id}
        async with (
            client.stream("GET", "/events", params={"user": "alice"}, headers=headers) as response,
            contextlib.aclosing(sse_blocks(response)) as blocks,
        ):
            await subscribed(blocks)
            assert_is(await next_event(blocks), sent[2])
            assert_is(await next_event(blocks), sent[3])
            bus.publish(live := note("live"))
            assert_is(await next_event(blocks), live)
        headers = {"Last-Event-ID": "0190a5e0-0000-7000-8000-00000000dead"}
        async with (
            client.stream("GET", "/events", params={"user": "alice"}, headers=headers) as response,
            contextlib.aclosing(sse_blocks(response)) as blocks,
        ):
            await subscribed(blocks)
            resync = await next_event(blocks)
            assert resync.event == "resync"
            assert resync.id is None
            assert json.loads(resync.data[0]) == {"reason": "last_event_id_unknown"}


@pytest.mark.asyncio
async def test_a_slow_consumer_does_not_block_a_fast_one() -> None:
    # Events big enough that the slow client's socket buffers fill: its stream then waits on
    # the network, and its bus queue (8 deep) overflows while the fast client reads everything.
    bus = EventBus(queue_size=8)
    blob = "x" * 100_000
    sent = [note(str(i), blob=blob) for i in range(200)]
    async with (
        sse_server(bus) as client,
        client.stream("GET", "/events", params={"user": "alice"}) as slow_response,
        client.stream("GET", "/events", params={"user": "alice"}) as fast_response,
        contextlib.aclosing(sse_blocks(slow_response)) as slow,
        contextlib.aclosing(sse_blocks(fast_response)) as fast,
        asyncio.timeout(60),
    ):
        await subscribed(slow)
        await subscribed(fast)
        for notification in sent:
            bus.publish(notification)
            block = await next_event(fast)
            assert block.id == notification.id, "the fast client saw a gap or a reordering"
        assert bus.stats.dropped > 0, "the slow client's buffers absorbed everything"

        # The slow client, reading at last, learns how much it lost and ends with the newest.
        ids: list[str] = []
        while True:
            block = await next_event(slow)
            if block.event == "dropped":
                lost = json.loads(block.data[0])["count"]
                break
            assert block.id is not None
            ids.append(block.id)
        rest = [(await next_event(slow)).id for _ in range(len(sent) - len(ids) - lost)]
        assert ids + rest == [n.id for n in sent[: len(ids)] + sent[len(ids) + lost :]]
        assert rest[-1] == sent[-1].id
        assert lost == bus.stats.dropped


@pytest.mark.asyncio
async def test_disconnecting_removes_the_subscription() -> None:
    bus = EventBus()
    async with sse_server(bus) as client, asyncio.timeout(10):
        async with (
            client.stream("GET", "/events", params={"user": "alice"}) as response,
            contextlib.aclosing(sse_blocks(response)) as blocks,
        ):
            await subscribed(blocks)
            assert bus.subscriber_count("alice") == 1
        await eventually(lambda: bus.subscriber_count() == 0)


@pytest.mark.asyncio
async def test_too_many_streams_for_one_user_get_429() -> None:
    bus = EventBus(max_subscribers_per_user=1)
    async with (
        sse_server(bus) as client,
        client.stream("GET", "/events", params={"user": "alice"}) as response,
        contextlib.aclosing(sse_blocks(response)) as blocks,
        asyncio.timeout(10),
    ):
        await subscribed(blocks)
        refused = await client.get("/events", params={"user": "alice"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["error"] == "too_many_streams"


@pytest.mark.asyncio
async def test_closing_the_bus_ends_open_streams() -> None:
    bus = EventBus()
    async with (
        sse_server(bus) as client,
        client.stream("GET", "/events", params={"user": "alice"}) as response,
        contextlib.aclosing(sse_blocks(response)) as blocks,
        asyncio.timeout(10),
    ):
        await subscribed(blocks)
        bus.close()
        assert [block async for block in blocks] == []
