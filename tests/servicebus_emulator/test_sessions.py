"""Message sessions with the unmodified async SDK, as Microsoft documents the service.

Reference: "Message sessions" on learn.microsoft.com: a session receiver holds an exclusive lock
on one session; another receiver asking for a held session fails (SessionCannotBeLocked);
accepting the next available session skips sessions that are held or have no messages and
times out when there is none; session state is per session and survives the session lock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from azure.servicebus import NEXT_AVAILABLE_SESSION, ServiceBusMessage
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient
from azure.servicebus.exceptions import (
    OperationTimeoutError,
    ServiceBusError,
    SessionCannotBeLockedError,
    SessionLockLostError,
)

pytestmark = pytest.mark.asyncio


async def _send(client: ServiceBusClient, queue: str, *pairs: tuple[str, str]) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage(body, session_id=sid) for sid, body in pairs])


async def test_a_named_session_receives_only_its_messages_in_order(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"))
    async with client.get_queue_receiver(session_queue, session_id="a") as receiver:
        assert receiver.session.session_id == "a"
        locked_until = receiver.session.locked_until_utc
        assert locked_until is not None and locked_until > datetime.now(UTC)
        got = []
        while len(got) < 3:
            batch = await receiver.receive_messages(max_message_count=3, max_wait_time=5)
            assert batch
            for message in batch:
                assert message.session_id == "a"
                got.append(str(message))
                await receiver.complete_message(message)
        assert got == ["a1", "a2", "a3"]
        assert await receiver.receive_messages(max_wait_time=0.5) == []
    async with client.get_queue_receiver(session_queue, session_id="b") as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "b1" and message.session_id == "b"
        await receiver.complete_message(message)


async def test_a_held_session_cannot_be_locked_again(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("held", "x"))
    async with client.get_queue_receiver(session_queue, session_id="held") as holder:
        with pytest.raises(SessionCannotBeLockedError):
            async with client.get_queue_receiver(session_queue, session_id="held") as other:
                await other.receive_messages(max_wait_time=1)
        [message] = await holder.receive_messages(max_wait_time=5)
        await holder.complete_message(message)
    # released on close: a new receiver can take it
    async with client.get_queue_receiver(session_queue, session_id="held") as again:
        assert again.session.session_id == "held"


@pytest.mark.slow
async def test_next_available_skips_held_and_empty_sessions(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("one", "1"), ("two", "2"))
    async with client.get_queue_receiver(session_queue, session_id="one") as holder:
        async with client.get_queue_receiver(
            session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=5
        ) as receiver:
            assert receiver.session.session_id == "two"
            [message] = await receiver.receive_messages(max_wait_time=5)
            assert str(message) == "2"
            await receiver.complete_message(message)
        # "two" is now empty and "one" is held: nothing is available
        started = time.monotonic()
        with pytest.raises(OperationTimeoutError):
            async with client.get_queue_receiver(
                session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=2
            ) as receiver:
                await receiver.receive_messages(max_wait_time=1)
        elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 10, elapsed
        [held_message] = await holder.receive_messages(max_wait_time=5)
        await holder.complete_message(held_message)


async def test_next_available_waits_for_a_session_to_arrive(
    client: ServiceBusClient, session_queue: str
) -> None:
    async def send_later() -> None:
        await asyncio.sleep(1)
        await _send(client, session_queue, ("late", "arrived"))

    task = asyncio.create_task(send_later())
    async with client.get_queue_receiver(
        session_queue, session_id=NEXT_AVAILABLE_SESSION, max_wait_time=10
    ) as receiver:
        assert receiver.session.session_id == "late"
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.complete_message(message)
    await task


async def test_session_state_round_trips_and_outlives_the_lock(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("stateful", "m"))
    async with client.get_queue_receiver(session_queue, session_id="stateful") as receiver:
        assert await receiver.session.get_state() is None
        await receiver.session.set_state(b"step-1")
        assert await receiver.session.get_state() == b"step-1"
    async with client.get_queue_receiver(session_queue, session_id="stateful") as receiver:
        assert await receiver.session.get_state() == b"step-1"
        await receiver.session.set_state(None)
        assert await receiver.session.get_state() is None
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.complete_message(message)


async def test_abandon_in_a_session_redelivers_in_order(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("s", "first"), ("s", "second"))
    async with client.get_queue_receiver(session_queue, session_id="s") as receiver:
        [first] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        await receiver.abandon_message(first)
        [again] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(again) == "first" and again.delivery_count == 1
        await receiver.complete_message(again)
        [second] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(second) == "second"
        await receiver.complete_message(second)


async def test_closing_a_session_receiver_releases_its_messages(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("r", "unsettled"))
    async with client.get_queue_receiver(session_queue, session_id="r") as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert message.delivery_count == 0
    async with client.get_queue_receiver(session_queue, session_id="r") as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "unsettled"
        assert message.delivery_count == 1  # the lock was lost with the session
        await receiver.complete_message(message)


@pytest.mark.slow
async def test_session_lock_renewal_and_expiry(client: ServiceBusClient, make_queue) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(requires_session=True, lock_duration=1)
    await _send(client, queue, ("e", "m1"), ("e", "m2"))
    async with client.get_queue_receiver(queue, session_id="e") as receiver:
        first_until = receiver.session.locked_until_utc
        await asyncio.sleep(0.6)
        renewed = await receiver.session.renew_lock()
        assert first_until is not None and renewed > first_until
        [message] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        await receiver.complete_message(message)
        await asyncio.sleep(1.3)
        with pytest.raises(SessionLockLostError):
            await receiver.receive_messages(max_wait_time=1)
    # the lapsed session is free again and keeps its remaining message
    async with client.get_queue_receiver(queue, session_id="e") as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "m2"
        await receiver.complete_message(message)


@pytest.mark.slow
async def test_auto_lock_renewer_keeps_a_session(client: ServiceBusClient, make_queue) -> None:  # type: ignore[no-untyped-def]
    queue = make_queue(requires_session=True, lock_duration=3)
    await _send(client, queue, ("kept", "m"))
    renewer = AutoLockRenewer(max_lock_renewal_duration=10)
    try:
        async with client.get_queue_receiver(
            queue, session_id="kept", auto_lock_renewer=renewer
        ) as receiver:
            await asyncio.sleep(3.6)
            [message] = await receiver.receive_messages(max_wait_time=5)
            await receiver.complete_message(message)
    finally:
        await renewer.close()


async def test_a_plain_receiver_on_a_session_queue_is_refused(
    client: ServiceBusClient, session_queue: str
) -> None:
    with pytest.raises(ServiceBusError):
        async with client.get_queue_receiver(session_queue) as receiver:
            await receiver.receive_messages(max_wait_time=1)


async def test_a_message_without_session_id_is_refused(
    client: ServiceBusClient, session_queue: str
) -> None:
    async with client.get_queue_sender(session_queue) as sender:
        with pytest.raises(ServiceBusError):
            await sender.send_messages(ServiceBusMessage("no session"))


async def test_deferred_session_messages_come_back_through_the_session(
    client: ServiceBusClient, session_queue: str
) -> None:
    await _send(client, session_queue, ("d", "later"), ("d", "now"))
    async with client.get_queue_receiver(session_queue, session_id="d") as receiver:
        [first] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(first) == "later"
        await receiver.defer_message(first)
        [second] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(second) == "now"
        await receiver.complete_message(second)
        [deferred] = await receiver.receive_deferred_messages([first.sequence_number])
        assert str(deferred) == "later" and deferred.session_id == "d"
        await receiver.complete_message(deferred)
        assert await receiver.peek_messages(max_message_count=5, sequence_number=1) == []
