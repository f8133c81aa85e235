"""Messages on SQS: exact bytes and attributes, the exact size limit, deduplication by message
id, what SQS really stores, and what the adapter refuses instead of doing less."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqs_helpers import url_of

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient
from queue_runtime.adapters.sqs._codec import encode, guaranteed_size

pytestmark = pytest.mark.asyncio

KIB_256 = 256 * 1024


@pytest_asyncio.fixture
async def queue(client: SqsQueueClient, name: qr.QueueName) -> AsyncIterator[qr.QueueName]:
    await client.create_queue(name)
    yield name
    await client.delete_queue(name)


@pytest_asyncio.fixture
async def session_queue(client: SqsQueueClient, name: qr.QueueName) -> AsyncIterator[qr.QueueName]:
    await client.create_queue(name, requires_session=True)
    yield name
    await client.delete_queue(name)


async def receive_count(
    client: SqsQueueClient, queue: qr.QueueName, count: int
) -> list[qr.ReceivedMessage]:
    received: list[qr.ReceivedMessage] = []
    while len(received) < count and (batch := await client.receive_messages(queue, timeout=2)):
        received.extend(batch)
    return received


async def test_every_byte_value_round_trips(client: SqsQueueClient, queue: qr.QueueName) -> None:
    bodies = [bytes(range(256)), bytes(range(255, -1, -1)), b"\x00", b"\xff" * 1000]
    bodies += [bytes([value]) for value in range(256)]
    # in waves: moto slows down with queue depth
    for first in range(0, len(bodies), 40):
        wave = bodies[first : first + 40]
        await client.send_messages(queue, [qr.Message(body) for body in wave])
        received = await receive_count(client, queue, len(wave))
        assert sorted(m.body for m in received) == sorted(wave)
        await client.complete_messages(received)
    assert await client.receive_message(queue, timeout=0) is None


async def test_text_is_stored_as_text_and_binary_in_a_binary_attribute(
    client: SqsQueueClient, boto: Any, queue: qr.QueueName
) -> None:
    await client.send_message(queue, qr.Message('{"pr": 42, "title": "✓"}'.encode()))
    await client.send_message(queue, qr.Message(b"\x89PNG\r\n\x1a\n"))
    raw = boto.receive_message(
        QueueUrl=url_of(boto, str(queue)), MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    by_body = {m["Body"]: m for m in raw}
    assert '{"pr": 42, "title": "✓"}' in by_body  # readable by any SQS consumer
    binary = by_body["."]["MessageAttributes"]["qr-body"]
    assert (binary["DataType"], binary["BinaryValue"]) == ("Binary", b"\x89PNG\r\n\x1a\n")


async def test_more_than_ten_attributes_round_trip(
    client: SqsQueueClient, boto: Any, queue: qr.QueueName
) -> None:
    attributes = {f"属性 {i}": f"значение {i} ✓" * (i + 1) for i in range(30)}
    attributes["empty"] = ""
    await client.send_message(queue, qr.Message(b"x", attributes=attributes, correlation_id=""))
    got = await client.receive_message(queue, timeout=5)
    assert got is not None
    assert dict(got.attributes) == attributes
    assert got.correlation_id == ""
    await client.complete_message(got)


@pytest.mark.parametrize("fifo", [False, True])
async def test_the_exact_size_limit_with_256_kib(
    sqs_config: qr.AwsSqsConfig, boto: Any, name: qr.QueueName, fifo: bool
) -> None:
    config = sqs_config.model_copy(update={"max_message_size": KIB_256})
    async with SqsQueueClient(config) as client:
        size = client.capabilities.max_message_size
        assert size == guaranteed_size(KIB_256)
        await client.create_queue(name, requires_session=fifo)
        session = "s" if fifo else None

        # a body of the advertised size always fits, whatever its bytes and id
        body = bytes(range(256)) * (size // 256)
        body += b"\xff" * (size - len(body))
        largest = qr.Message(body, session_id=session, message_id="i" * 128)
        assert encode(largest, fifo=fifo).size <= KIB_256
        await client.send_message(name, largest)
        with pytest.raises(qr.ValidationError):
            await client.send_message(name, qr.Message(body + b"x", session_id=session))

        # attributes count by the contract's rule, up to the advertised size
        attributes = {f"k{i}": "v" for i in range(50)}
        counted = sum(len(key) + len(value) for key, value in attributes.items())
        fits = qr.Message(
            b"t" * (size - counted), session_id=session, attributes=attributes, message_id="at"
        )
        over = fits._replace(body=fits.body + b"t", message_id="over")
        await client.send_message(name, fits)
        with pytest.raises(qr.ValidationError):
            await client.send_message(name, over)
        with pytest.raises(qr.ValidationError):
            await client.send_messages(name, [qr.Message(b"ok", session_id=session), over])

        # only the two that fit were sent
        url = url_of(boto, f"{name}.fifo" if fifo else str(name))
        counts = boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessages"] == "2"
        await client.delete_queue(name)


async def test_a_resent_message_id_is_deduplicated_on_fifo_queues(
    client: SqsQueueClient, session_queue: qr.QueueName
) -> None:
    message = qr.Message(b"once", session_id="s")
    await client.send_message(session_queue, message)
    await client.send_message(session_queue, message)  # a retry: SQS drops the duplicate
    await client.send_message(session_queue, qr.Message(b"other", session_id="s"))
    async with await client.accept_session(session_queue, "s") as session:
        received = await session.receive_messages(timeout=5)
        assert [m.body for m in received] == [b"once", b"other"]
        await session.complete_messages(received)


async def test_session_ids_sqs_cannot_take_as_group_ids(
    client: SqsQueueClient, boto: Any, session_queue: qr.QueueName
) -> None:
    await client.send_message(session_queue, qr.Message(b"x", session_id="café au lait ✓"))
    raw = boto.receive_message(
        QueueUrl=url_of(boto, f"{session_queue}.fifo"),
        MessageSystemAttributeNames=["MessageGroupId"],
        MessageAttributeNames=["All"],
        VisibilityTimeout=0,
    )["Messages"][0]
    assert raw["Attributes"]["MessageGroupId"].startswith("qr-sha256:")
    meta = json.loads(raw["MessageAttributes"]["qr-meta"]["StringValue"])
    assert meta["session_id"] == "café au lait ✓"
    async with await client.accept_session(session_queue, "café au lait ✓") as session:
        got = await session.receive_message(timeout=5)
        assert got is not None and got.session_id == "café au lait ✓"
        await session.complete_message(got)


async def test_scheduled_messages_are_refused_not_sent_early(
    client: SqsQueueClient, queue: qr.QueueName
) -> None:
    assert "scheduled_messages" not in client.capabilities
    later = qr.Message(b"later", scheduled_enqueue_time=datetime.now(UTC) + timedelta(minutes=1))
    with pytest.raises(qr.UnsupportedOperation):
        await client.send_message(queue, later)
    with pytest.raises(qr.UnsupportedOperation):
        await client.send_messages(queue, [qr.Message(b"now"), later])
    assert await client.receive_message(queue, timeout=0) is None


async def test_session_state_is_unsupported(
    client: SqsQueueClient, session_queue: qr.QueueName
) -> None:
    assert "session_state" not in client.capabilities
    async with await client.accept_session(session_queue, "s") as session:
        with pytest.raises(qr.UnsupportedOperation):
            await session.get_state()
        with pytest.raises(qr.UnsupportedOperation):
            await session.set_state(b"x")


async def test_time_to_live_is_checked_on_receive(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=1, dead_letter_on_expiration=True)
    short = qr.Message(b"short", time_to_live=timedelta(seconds=1))
    await client.send_messages(name, [short, qr.Message(b"long", time_to_live=timedelta(hours=1))])
    await asyncio.sleep(1.2)
    got = await client.receive_messages(name, timeout=1)
    assert [m.body for m in got] == [b"long"]
    assert got[0].time_to_live == timedelta(hours=1)
    await client.complete_message(got[0])
    dead = await client.receive_message(name.dead_letter, timeout=2)
    assert dead is not None
    assert (dead.body, dead.dead_letter_reason) == (b"short", "TTLExpiredException")
    await client.complete_message(dead)
    await client.delete_queue(name)
