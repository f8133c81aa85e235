"""Sessions emulated on FIFO message groups: what the process holds for whom, in flight in SQS,
and what it costs in receive counts (nothing, as long as the process holds the messages)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqs_helpers import url_of

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient

pytestmark = pytest.mark.asyncio


def counts(boto: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue, as SQS counts them."""
    attributes = boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def test_other_groups_received_meanwhile_are_held_for_their_own_session(
    client: SqsQueueClient,
    other_client: SqsQueueClient,
    boto: Any,
    name: qr.QueueName,
) -> None:
    await client.create_queue(name, requires_session=True, lock_duration=2)
    url = url_of(boto, f"{name}.fifo")
    await client.send_message(name, qr.Message(b"b-0", session_id="b"))
    await client.send_message(name, qr.Message(b"a-0", session_id="a"))
    async with await client.accept_session(name, "a") as a:
        got = await a.receive_message(timeout=5)
        assert got is not None and got.body == b"a-0"
        # b-0 came along: it is held in flight for session "b", not handed back to SQS
        assert counts(boto, url) == (0, 2)
        await asyncio.sleep(1.2)
        await a.renew_session_lock()
        await asyncio.sleep(1.3)  # longer than the lock: the process keeps b-0 in flight
        assert counts(boto, url) == (0, 2)
        # any client of the process gets it, with no receive burned on the way
        async with await other_client.accept_session(name, timeout=5) as b:
            assert b is not None and b.session_id == "b"
            held = await b.receive_message(timeout=0)
            assert held is not None and (held.body, held.delivery_count) == (b"b-0", 1)
            await b.complete_message(held)
        await a.complete_message(got)
    await client.delete_queue(name)


async def test_held_messages_nobody_takes_go_back_to_sqs_without_a_burned_count(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True, lock_duration=1)
    url = url_of(boto, f"{name}.fifo")
    await client.send_messages(name, [qr.Message(b"b-0", session_id="b")])
    await client.send_messages(name, [qr.Message(b"a-0", session_id="a")])
    async with await client.accept_session(name, "a") as a:
        got = await a.receive_message(timeout=5)
        assert got is not None
        await a.complete_message(got)
        # b-0 is held for "b" for a few lock durations, then given back explicitly
        for _ in range(50):
            if counts(boto, url) == (1, 0):
                break
            await asyncio.sleep(0.2)
        assert counts(boto, url) == (1, 0)
    async with await client.accept_session(name, "b") as b:
        back = await b.receive_message(timeout=5)
        # SQS counted a second receive; the process knows it was no delivery
        assert back is not None and (back.body, back.delivery_count) == (b"b-0", 1)
        await b.complete_message(back)
    await client.delete_queue(name)


async def test_a_session_is_exclusive_across_client_objects_of_the_process(
    client: SqsQueueClient, other_client: SqsQueueClient, name: qr.QueueName
) -> None:
    assert "exclusive_sessions_across_processes" not in client.capabilities
    await client.create_queue(name, requires_session=True)
    async with await client.accept_session(name, "s"):
        with pytest.raises(qr.SessionLocked):
            await other_client.accept_session(name, "s")
    async with await other_client.accept_session(name, "s") as again:
        assert again.session_id == "s"
    await client.delete_queue(name)


async def test_renewing_the_session_extends_every_held_message(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True, lock_duration=2)
    url = url_of(boto, f"{name}.fifo")
    await client.send_messages(
        name, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(3)]
    )
    async with await client.accept_session(name, "s") as session:
        held = await session.receive_messages(max_messages=3, timeout=5)
        assert [m.body for m in held] == [b"m0", b"m1", b"m2"]
        before = session.locked_until
        await asyncio.sleep(1.2)
        renewed = await session.renew_session_lock()
        assert renewed > before and session.locked_until == renewed
        await asyncio.sleep(1.2)  # past the first lock: all three are still ours
        assert counts(boto, url) == (0, 3)
        await session.complete_messages(held)
    await client.delete_queue(name)


async def test_closing_with_unsettled_messages_gives_the_group_back_at_once(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True)
    url = url_of(boto, f"{name}.fifo")
    await client.send_messages(
        name, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(2)]
    )
    async with await client.accept_session(name, "s") as session:
        got = await session.receive_message(timeout=5)
        assert got is not None
    # visible in SQS again, for any process, in order
    assert counts(boto, url) == (2, 0)
    async with await client.accept_session(name, timeout=5) as again:
        assert again is not None
        received = []
        for _ in range(2):  # SQS hands out m1 once m0 is settled (one fetch each)
            [message] = await again.receive_messages(timeout=5)
            await again.complete_message(message)
            received.append(message)
        assert [(m.body, m.delivery_count) for m in received] == [(b"m0", 2), (b"m1", 1)]
    await client.delete_queue(name)


async def test_a_session_fetches_no_more_than_it_asks_for(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    """SQS counts a receive for every message it hands out, also one given back unseen, and
    a worker stopped twice would see such messages dead-lettered: fetch only what is asked."""
    await client.create_queue(name, requires_session=True)
    url = url_of(boto, f"{name}.fifo")
    await client.send_messages(
        name, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(3)]
    )
    async with await client.accept_session(name, "s") as session:
        got = await session.receive_message(timeout=5)
        assert got is not None
        await session.complete_message(got)
    assert counts(boto, url) == (2, 0)  # m1 and m2 were never fetched
    async with await client.accept_session(name, timeout=5) as again:
        assert again is not None
        received = []
        for _ in range(2):
            [message] = await again.receive_messages(timeout=5)
            await again.complete_message(message)
            received.append(message)
        assert [(m.body, m.delivery_count) for m in received] == [(b"m1", 1), (b"m2", 1)]
    await client.delete_queue(name)


async def test_abandon_in_a_session_keeps_the_message_in_flight_and_first(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True, max_delivery_count=3)
    url = url_of(boto, f"{name}.fifo")
    await client.send_messages(
        name, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(2)]
    )
    async with await client.accept_session(name, "s") as session:
        for count in (1, 2, 3):
            got = await session.receive_message(timeout=5)
            assert got is not None and (got.body, got.delivery_count) == (b"m0", count)
            # m0 stays in flight, never visible to another process meanwhile (and SQS
            # withholds m1, which was not fetched, while its group has a message in flight)
            assert counts(boto, url) == (1, 1)
            await session.abandon_message(got)
        # delivered max_delivery_count times: the adapter moved it to the DLQ itself
        nxt = await session.receive_message(timeout=5)
        assert nxt is not None and (nxt.body, nxt.delivery_count) == (b"m1", 1)
        await session.complete_message(nxt)
    dead = await client.receive_message(name.dead_letter, timeout=5)
    assert dead is not None
    assert (dead.body, dead.session_id, dead.dead_letter_reason) == (
        b"m0",
        "s",
        "MaxDeliveryCountExceeded",
    )
    await client.complete_message(dead)
    await client.delete_queue(name)


async def test_a_receive_waits_without_blocking_the_event_loop(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await client.receive_message(name, timeout=1.5) is None  # a long poll in a thread
    elapsed = loop.time() - started
    ticker.cancel()
    assert 1.4 <= elapsed < 3
    assert ticks > 50
    await client.delete_queue(name)
