"""The $management operations and entity features with the unmodified async SDK.

References: "Message browsing", "Scheduled messages", "Duplicate detection" and "Authentication
and authorization" (shared access signatures) on learn.microsoft.com: peek returns messages in
sequence order without locking them (locked and deferred ones included); a scheduled message
only becomes available at its enqueue time and can be cancelled by sequence number; a duplicate
message id within the detection window is accepted and dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusMessageState, ServiceBusSubQueue
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import ServiceBusAuthenticationError, ServiceBusError

from queue_runtime.testing.servicebus_emulator import ServiceBusEmulator, running_emulator

pytestmark = pytest.mark.asyncio


async def test_peek_browses_in_sequence_order_without_locking(
    client: ServiceBusClient, queue: str
) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage(f"p{i}") for i in range(4)])
    async with client.get_queue_receiver(queue) as receiver:
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["p0", "p1", "p2", "p3"]
        numbers = [m.sequence_number for m in peeked]
        assert numbers == sorted(numbers)
        assert all(m.lock_token is None for m in peeked)
        with pytest.raises(ValueError):
            await receiver.complete_message(peeked[0])
        # a locked message is still browsable, and peeking again continues after the last one
        [locked] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(locked) == "p0"
        again = await receiver.peek_messages(max_message_count=2, sequence_number=numbers[0])
        assert [str(m) for m in again] == ["p0", "p1"]
        rest = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in rest] == ["p2", "p3"]
        assert await receiver.peek_messages(max_message_count=10) == []
        # peeking counted no delivery
        await receiver.complete_message(locked)
        [p1] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(p1) == "p1" and p1.delivery_count == 0
        await receiver.complete_message(p1)


async def test_peek_shows_deferred_messages_and_the_dlq(
    client: ServiceBusClient, queue: str
) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage("deferred"), ServiceBusMessage("dead")])
    async with client.get_queue_receiver(queue) as receiver:
        [first] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        await receiver.defer_message(first)
        [second] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        await receiver.dead_letter_message(second, reason="r", error_description="d")
        [peeked] = await receiver.peek_messages(max_message_count=5, sequence_number=1)
        assert str(peeked) == "deferred"
        assert peeked.state == ServiceBusMessageState.DEFERRED
    async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = await dlq.peek_messages(max_message_count=5)
        assert str(dead) == "dead" and dead.dead_letter_reason == "r"


async def test_peek_in_a_session(client: ServiceBusClient, session_queue: str) -> None:
    async with client.get_queue_sender(session_queue) as sender:
        await sender.send_messages(
            [
                ServiceBusMessage("x1", session_id="x"),
                ServiceBusMessage("y1", session_id="y"),
                ServiceBusMessage("x2", session_id="x"),
            ]
        )
    async with client.get_queue_receiver(session_queue, session_id="x") as receiver:
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["x1", "x2"]


@pytest.mark.slow
async def test_scheduled_messages_wait_for_their_time(client: ServiceBusClient, queue: str) -> None:
    async with (
        client.get_queue_sender(queue) as sender,
        client.get_queue_receiver(queue) as receiver,
    ):
        when = datetime.now(UTC) + timedelta(seconds=1.5)
        [number] = await sender.schedule_messages(ServiceBusMessage("scheduled"), when)
        assert isinstance(number, int)
        cancelled = await sender.schedule_messages(
            [ServiceBusMessage("cancelled-1"), ServiceBusMessage("cancelled-2")], when
        )
        assert len(cancelled) == 2 and number not in cancelled
        await sender.cancel_scheduled_messages(cancelled)
        [peeked] = await receiver.peek_messages(max_message_count=10)
        assert str(peeked) == "scheduled"
        assert peeked.state == ServiceBusMessageState.SCHEDULED
        assert peeked.scheduled_enqueue_time_utc is not None
        assert abs((peeked.scheduled_enqueue_time_utc - when).total_seconds()) < 0.01
        assert await receiver.receive_messages(max_wait_time=0.5) == []
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert datetime.now(UTC) >= when - timedelta(milliseconds=50)
        assert str(message) == "scheduled"
        assert message.sequence_number == number
        assert message.enqueued_time_utc is not None
        await receiver.complete_message(message)
        assert await receiver.receive_messages(max_wait_time=0.5) == []


@pytest.mark.slow
async def test_scheduled_enqueue_time_on_a_sent_message(
    client: ServiceBusClient, queue: str
) -> None:
    async with (
        client.get_queue_sender(queue) as sender,
        client.get_queue_receiver(queue) as receiver,
    ):
        message = ServiceBusMessage("later")
        message.scheduled_enqueue_time_utc = datetime.now(UTC) + timedelta(seconds=1)
        await sender.send_messages(message)
        assert await receiver.receive_messages(max_wait_time=0.4) == []
        [received] = await receiver.receive_messages(max_wait_time=5)
        assert str(received) == "later"
        await receiver.complete_message(received)


async def test_cancelling_an_unknown_scheduled_message_fails(
    emulator: ServiceBusEmulator, queue: str
) -> None:
    async with (
        ServiceBusClient.from_connection_string(
            emulator.connection_string, retry_total=0
        ) as client,
        client.get_queue_sender(queue) as sender,
    ):
        with pytest.raises(ServiceBusError):
            await sender.cancel_scheduled_messages(987654)


async def test_duplicate_detection_drops_a_repeated_message_id(
    client: ServiceBusClient, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(requires_duplicate_detection=True)
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(ServiceBusMessage("original", message_id="same"))
        await sender.send_messages(ServiceBusMessage("duplicate", message_id="same"))
        await sender.send_messages(ServiceBusMessage("other", message_id="different"))
    async with client.get_queue_receiver(queue) as receiver:
        peeked = await receiver.peek_messages(max_message_count=10)
        assert [str(m) for m in peeked] == ["original", "other"]


async def test_a_configured_key_rejects_a_bad_signature() -> None:
    with running_emulator(sas_key=("sender", "s3cret")) as emulator:
        emulator.create_queue("guarded")
        async with (
            ServiceBusClient.from_connection_string(emulator.connection_string) as good,
            good.get_queue_sender("guarded") as sender,
        ):
            await sender.send_messages(ServiceBusMessage("authorised"))
        wrong = emulator.connection_string.replace("s3cret", "guess")
        async with ServiceBusClient.from_connection_string(wrong, retry_total=0) as bad:
            with pytest.raises(ServiceBusAuthenticationError):
                async with bad.get_queue_sender("guarded") as sender:
                    await sender.send_messages(ServiceBusMessage("refused"))
        assert emulator.message_count("guarded") == 1


async def test_sending_to_an_unknown_queue_is_not_found(emulator: ServiceBusEmulator) -> None:
    from azure.servicebus.exceptions import MessagingEntityNotFoundError

    async with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        with pytest.raises(MessagingEntityNotFoundError):
            async with client.get_queue_sender("no-such-queue") as sender:
                await sender.send_messages(ServiceBusMessage("lost"))


async def test_receiving_from_an_unknown_queue_is_not_found(
    emulator: ServiceBusEmulator,
) -> None:
    from azure.servicebus.exceptions import MessagingEntityNotFoundError

    async with ServiceBusClient.from_connection_string(
        emulator.connection_string, retry_total=0
    ) as client:
        with pytest.raises(MessagingEntityNotFoundError):
            async with client.get_queue_receiver("no-such-queue") as receiver:
                await receiver.receive_messages(max_wait_time=1)
