"""Sending and receiving with the unmodified async SDK, as Microsoft documents the service.

References: "Messages, payloads, and serialization", "Message transfers, locks, and settlement"
and "Azure Service Bus message sessions" on learn.microsoft.com.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceiveMode
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import MessageSizeExceededError

from queue_runtime.testing.servicebus_emulator import ServiceBusEmulator

pytestmark = pytest.mark.asyncio


async def test_properties_survive_the_round_trip(client: ServiceBusClient, queue: str) -> None:
    sent = ServiceBusMessage(
        b"payload",
        application_properties={"kind": "push", "attempt": 3, "ok": True},
        message_id="m-1",
        correlation_id="corr-1",
        content_type="application/json",
        subject="label",
        reply_to="replies",
        to="someone",
    )
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(sent)
    async with client.get_queue_receiver(queue, max_wait_time=5) as receiver:
        [message] = await receiver.receive_messages(max_message_count=1, max_wait_time=5)
        assert b"".join(message.body) == b"payload"
        assert message.application_properties == {b"kind": b"push", b"attempt": 3, b"ok": True}
        assert message.message_id == "m-1"
        assert message.correlation_id == "corr-1"
        assert message.content_type == "application/json"
        assert message.subject == "label"
        assert message.reply_to == "replies"
        assert message.to == "someone"
        # the service numbers messages and stamps their enqueue time and lock
        assert message.sequence_number is not None and message.sequence_number >= 1
        assert message.enqueued_time_utc is not None
        assert abs(message.enqueued_time_utc - datetime.now(UTC)) < timedelta(seconds=30)
        assert message.locked_until_utc is not None
        assert message.locked_until_utc > datetime.now(UTC)
        # "DeliveryCount: number of deliveries that have been attempted": 0 on the first one
        assert message.delivery_count == 0
        assert isinstance(message.lock_token, uuid.UUID)
        await receiver.complete_message(message)
        assert await receiver.receive_messages(max_wait_time=0.5) == []


async def test_order_is_first_in_first_out(client: ServiceBusClient, queue: str) -> None:
    async with client.get_queue_sender(queue) as sender:
        for index in range(5):
            await sender.send_messages(ServiceBusMessage(str(index)))
    async with client.get_queue_receiver(queue) as receiver:
        received = []
        while len(received) < 5:
            batch = await receiver.receive_messages(max_message_count=5, max_wait_time=5)
            assert batch
            for message in batch:
                received.append(str(message))
                await receiver.complete_message(message)
    assert received == ["0", "1", "2", "3", "4"]
    numbers = []
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage("a"), ServiceBusMessage("b")])
    async with client.get_queue_receiver(queue) as receiver:
        while len(numbers) < 2:
            batch = await receiver.receive_messages(max_message_count=2, max_wait_time=5)
            assert batch
            numbers.extend(message.sequence_number for message in batch)
    assert numbers == sorted(numbers) and len(set(numbers)) == 2


async def test_a_list_is_sent_as_one_batch(client: ServiceBusClient, queue: str) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(
            [ServiceBusMessage(f"m{i}", application_properties={"i": i}) for i in range(10)]
        )
    async with client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        got: list[ServiceBusMessage] = []
        while len(got) < 10:
            batch = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
            assert batch
            got.extend(batch)
    assert [str(m) for m in got] == [f"m{i}" for i in range(10)]
    assert [m.application_properties[b"i"] for m in got] == list(range(10))


async def test_batch_size_comes_from_the_advertised_maximum(
    client: ServiceBusClient, queue: str
) -> None:
    """Standard tier: 256 KB per message (and per batch)."""
    async with client.get_queue_sender(queue) as sender:
        batch = await sender.create_message_batch()
        assert batch.max_size_in_bytes == 262144
        added = 0
        while True:
            try:
                batch.add_message(ServiceBusMessage(b"x" * 10_000))
            except MessageSizeExceededError:
                break
            added += 1
        assert 20 <= added <= 26
        await sender.send_messages(batch)
        too_big = ServiceBusMessage(b"x" * 300_000)
        with pytest.raises(MessageSizeExceededError):
            await sender.send_messages(too_big)
    async with client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        count = 0
        while count < added:
            batch_received = await receiver.receive_messages(max_message_count=50, max_wait_time=5)
            assert batch_received
            count += len(batch_received)
    assert count == added


async def test_receive_and_delete_removes_on_delivery(client: ServiceBusClient, queue: str) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(ServiceBusMessage("gone"))
    async with client.get_queue_receiver(
        queue, receive_mode=ServiceBusReceiveMode.RECEIVE_AND_DELETE
    ) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "gone"
        assert message.lock_token is None or message.locked_until_utc is None
    async with client.get_queue_receiver(queue) as receiver:
        assert await receiver.receive_messages(max_wait_time=0.5) == []


async def test_iterating_a_receiver(client: ServiceBusClient, queue: str) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages([ServiceBusMessage("1"), ServiceBusMessage("2")])
    seen = []
    async with client.get_queue_receiver(queue, max_wait_time=1) as receiver:
        async for message in receiver:
            seen.append(str(message))
            await receiver.complete_message(message)
    assert seen == ["1", "2"]


@pytest.mark.slow
async def test_time_to_live_expires_messages(client: ServiceBusClient, make_queue) -> None:  # type: ignore[no-untyped-def]
    """An expired message is no longer delivered; with dead-lettering on expiration enabled it
    moves to the DLQ with reason TTLExpiredException."""
    import asyncio

    plain = make_queue()
    dead_lettering = make_queue(dead_lettering_on_message_expiration=True)
    for name in (plain, dead_lettering):
        async with client.get_queue_sender(name) as sender:
            await sender.send_messages(
                [
                    ServiceBusMessage("short", time_to_live=timedelta(seconds=1)),
                    ServiceBusMessage("long", time_to_live=timedelta(minutes=5)),
                ]
            )
    await asyncio.sleep(1.3)
    for name in (plain, dead_lettering):
        async with client.get_queue_receiver(name) as receiver:
            [message] = await receiver.receive_messages(max_message_count=5, max_wait_time=3)
            assert str(message) == "long"
            assert message.time_to_live == timedelta(minutes=5)
            await receiver.complete_message(message)
    from azure.servicebus import ServiceBusSubQueue

    async with client.get_queue_receiver(
        dead_lettering, sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as receiver:
        [message] = await receiver.receive_messages(max_wait_time=5)
        assert str(message) == "short"
        assert message.dead_letter_reason == "TTLExpiredException"
        await receiver.complete_message(message)
    async with client.get_queue_receiver(
        plain, sub_queue=ServiceBusSubQueue.DEAD_LETTER
    ) as receiver:
        assert await receiver.receive_messages(max_wait_time=0.5) == []


async def test_a_token_credential_takes_the_same_path(
    emulator: ServiceBusEmulator, queue: str
) -> None:
    """Microsoft Entra tokens go through $cbs put-token like SAS tokens (type jwt)."""
    import time

    from azure.core.credentials import AccessToken

    class StaticCredential:
        async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            assert scopes and scopes[0].startswith("https://servicebus.azure.net/")
            return AccessToken("test-token", int(time.time()) + 3600)

        async def close(self) -> None:
            pass

    async with ServiceBusClient(
        f"127.0.0.1:{emulator.port}", StaticCredential(), use_tls=False
    ) as client:
        async with client.get_queue_sender(queue, keep_alive=None) as sender:
            await sender.send_messages(ServiceBusMessage("with a token"))
        async with client.get_queue_receiver(queue, keep_alive=None) as receiver:
            [message] = await receiver.receive_messages(max_wait_time=5)
            assert str(message) == "with a token"
            await receiver.complete_message(message)
