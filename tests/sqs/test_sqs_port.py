"""The port additions on SQS: native batch settlement (DeleteMessageBatch,
ChangeMessageVisibilityBatch), no peek, iteration, and the adapter's logging."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqs_helpers import KEYS, REGION, LossyProxy

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient

pytestmark = pytest.mark.asyncio


@pytest.fixture
def requests(client: SqsQueueClient) -> Iterator[list[str]]:
    """The SQS operations ``client`` calls from now on."""
    seen: list[str] = []

    def count(model: Any, **_: Any) -> None:
        seen.append(model.name)

    events = client._connection.sqs.meta.events
    events.register("before-call.sqs", count)
    yield seen
    events.unregister("before-call.sqs", count)


async def receive_all(client: SqsQueueClient, name: qr.QueueName, n: int) -> list[Any]:
    received: list[qr.ReceivedMessage] = []
    while len(received) < n:
        received.extend(await client.receive_messages(name, timeout=5))
    return received


async def test_complete_and_abandon_messages_batch_natively(
    client: SqsQueueClient, name: qr.QueueName, requests: list[str]
) -> None:
    await client.create_queue(name)
    await client.send_messages(name, [qr.Message(f"m{i}".encode()) for i in range(12)])
    received = await receive_all(client, name, 12)
    requests.clear()
    await client.abandon_messages(received)
    assert requests == ["ChangeMessageVisibilityBatch"] * 2
    again = await receive_all(client, name, 12)
    assert sorted(m.message_id for m in again) == sorted(m.message_id for m in received)
    assert all(m.delivery_count == 2 for m in again)
    with pytest.raises(qr.BatchSettleError) as caught:
        await client.abandon_messages(received)  # stale receipts: nothing is released
    assert not caught.value.settled and len(caught.value.failed) == 12
    requests.clear()
    await client.complete_messages(again)
    assert requests == ["DeleteMessageBatch"] * 2
    assert await client.receive_message(name, timeout=0) is None
    with pytest.raises(qr.ValidationError):  # checked before anything is settled
        await client.complete_messages([again[0], "not a message"])  # type: ignore[list-item]
    await client.delete_queue(name)


async def test_a_session_abandons_a_batch_locally_and_gets_it_back_in_order(
    client: SqsQueueClient, name: qr.QueueName, requests: list[str]
) -> None:
    await client.create_queue(name, requires_session=True)
    await client.send_messages(name, [qr.Message(f"m{i}".encode(), "s") for i in range(3)])
    async with await client.accept_session(name, "s") as session:
        got = await session.receive_messages(max_messages=3, timeout=5)
        requests.clear()
        await session.abandon_messages(got)
        assert requests == []  # held for the session: no call
        bodies = [message.body async for message in session.iter_messages(timeout=0)]
        assert bodies == [b"m0", b"m1", b"m2"]
    await client.delete_queue(name)


async def test_sqs_has_no_peek(client: SqsQueueClient, name: qr.QueueName) -> None:
    assert not client.capabilities.peek
    await client.create_queue(name, requires_session=True)
    with pytest.raises(qr.UnsupportedOperation):
        await client.peek_messages(name)
    async with await client.accept_session(name, "s") as session:
        with pytest.raises(qr.UnsupportedOperation):
            await session.peek_messages()
    await client.delete_queue(name)


@pytest_asyncio.fixture
async def lossy(moto_server: str) -> AsyncIterator[tuple[SqsQueueClient, LossyProxy]]:
    proxy = LossyProxy(moto_server, set())
    config = qr.AwsSqsConfig(region=REGION, endpoint_url=proxy.url, max_attempts=1, **KEYS)
    async with SqsQueueClient(config, default_timeout=5) as client:
        yield client, proxy
    proxy.close()


async def test_a_lost_batch_settlement_reply_is_an_unknown_outcome(
    lossy: tuple[SqsQueueClient, LossyProxy], name: qr.QueueName
) -> None:
    client, proxy = lossy
    await client.create_queue(name)
    await client.send_messages(name, [qr.Message(f"m{i}".encode()) for i in range(3)])
    received = await receive_all(client, name, 3)
    proxy.lose.add("DeleteMessageBatch")
    with pytest.raises(qr.BatchSettleError) as caught:
        await client.complete_messages(received)
    proxy.lose.clear()
    assert caught.value.outcome_unknown
    assert sorted(caught.value.unknown) == sorted(m.message_id for m in received)
    for message in received:  # receipts spent
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(message)
    assert await client.receive_message(name, timeout=0) is None  # SQS did delete them
    await client.delete_queue(name)


async def test_every_call_is_logged_at_debug_with_ids_and_never_a_body(
    client: SqsQueueClient, name: qr.QueueName, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="queue_runtime.adapters.sqs"):
        await client.create_queue(name, requires_session=True, lock_duration=1)
        message = qr.Message(b"secret body", session_id="s-1", message_id="id-1")
        await client.send_message(name, message)
        async with await client.accept_session(name, "s-1") as session:
            got = await session.receive_message(timeout=5)
            assert got is not None
            await session.complete_message(got)
            with pytest.raises(qr.MessageLockLost):
                await session.complete_message(got)
    records = [r for r in caplog.records if r.name == "queue_runtime.adapters.sqs"]
    text = "\n".join(r.getMessage() for r in records)
    assert "secret body" not in text
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert any("SendMessage" in line and "id-1@s-1" in line and str(name) in line for line in debug)
    assert any("DeleteMessage" in line and "id-1@s-1" in line for line in debug)
    assert any("ReceiveMessage" in line and "id-1@s-1" in line for line in debug)
    await client.delete_queue(name)


async def test_lock_loss_is_a_warning(
    client: SqsQueueClient, name: qr.QueueName, caplog: pytest.LogCaptureFixture
) -> None:
    await client.create_queue(name, lock_duration=1)
    await client.send_message(name, qr.Message(b"x", message_id="lost-1"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None
    await asyncio.sleep(1.0)
    with (
        caplog.at_level(logging.WARNING, logger="queue_runtime.adapters.sqs"),
        pytest.raises(qr.MessageLockLost),
    ):
        await client.complete_message(got)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("lost-1" in r.getMessage() for r in warnings)
    await client.delete_queue(name)


async def test_botocore_retries_are_warnings(
    moto_server: str, name: qr.QueueName, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = LossyProxy(moto_server, set())
    config = qr.AwsSqsConfig(region=REGION, endpoint_url=proxy.url, max_attempts=2, **KEYS)
    try:
        async with SqsQueueClient(config) as client:
            await client.create_queue(name)
            proxy.lose.add("SendMessage")
            with (
                caplog.at_level(logging.WARNING, logger="queue_runtime.adapters.sqs"),
                pytest.raises(qr.ConnectionError),
            ):
                await client.send_message(name, qr.Message(b"x"))
            proxy.lose.clear()
            assert proxy.lost == ["SendMessage", "SendMessage"]  # tried twice in all
            assert any("retrying, attempt 2" in r.getMessage() for r in caplog.records)
            await client.delete_queue(name)
    finally:
        proxy.close()


async def test_sessions_settling_at_once_share_requests(
    client: SqsQueueClient, name: qr.QueueName, requests: list[str]
) -> None:
    await client.create_queue(name, requires_session=True)
    await client.send_messages(name, [qr.Message(f"m{i}".encode(), f"s{i}") for i in range(3)])
    accepted = [await client.accept_session(name, f"s{i}") for i in range(3)]
    sessions = [session for session in accepted if session is not None]
    batches = [await s.receive_messages(timeout=5) for s in sessions]
    assert [len(batch) for batch in batches] == [1, 1, 1]
    requests.clear()
    pairs = list(zip(sessions, batches, strict=True))
    await asyncio.gather(*(s.complete_messages(b) for s, b in pairs))
    assert requests == ["DeleteMessageBatch"]  # one request for the three sessions
    # each session still settles only its own, and errors stay with their caller
    with pytest.raises(qr.BatchSettleError) as caught:
        await asyncio.gather(*(s.complete_messages(b) for s, b in pairs))
    assert len(caught.value.failed) == 1
    for session in sessions:
        await session.close()
    await client.delete_queue(name)
