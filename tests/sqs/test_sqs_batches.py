"""send_messages on SQS: split by 10 messages and by the size limit per request, in order; a
partial failure raises BatchSendError naming exactly what was not sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient
from queue_runtime.adapters.sqs._batches import batch_outcome, plan_batches

KIB = 1024


# -- the pure rules ------------------------------------------------------------------------


def test_batches_hold_at_most_ten_messages() -> None:
    assert plan_batches([1] * 25, 1000) == [range(10), range(10, 20), range(20, 25)]
    assert plan_batches([], 1000) == []


def test_batches_hold_at_most_the_size_limit() -> None:
    assert plan_batches([400, 400, 400, 100, 100], 1000) == [range(2), range(2, 5)]
    # a message of the limit's size goes alone
    assert plan_batches([1000, 1, 1000], 1000) == [range(1), range(1, 2), range(2, 3)]
    sizes = [37 * (i % 11 + 1) for i in range(200)]
    batches = plan_batches(sizes, 1000)
    assert [i for batch in batches for i in batch] == list(range(200))
    assert all(len(b) <= 10 and sum(sizes[i] for i in b) <= 1000 for b in batches)


def test_batch_outcome_names_what_was_not_sent() -> None:
    response = {
        "Successful": [{"Id": "3"}, {"Id": "5"}],
        "Failed": [{"Id": "4", "Code": "InternalError", "Message": "boom", "SenderFault": False}],
    }
    sent, not_sent = batch_outcome(range(3, 7), response)
    assert sent == [3, 5]
    assert not_sent == [
        (4, "InternalError: boom", False),
        (6, "SQS did not report this message", False),  # never assumed sent
    ]


# -- against the server --------------------------------------------------------------------


@pytest_asyncio.fixture
async def small_client(sqs_config: qr.AwsSqsConfig) -> AsyncIterator[SqsQueueClient]:
    config = sqs_config.model_copy(update={"max_message_size": 256 * KIB})
    async with SqsQueueClient(config) as client:
        yield client


def count_requests(client: SqsQueueClient, operation: str) -> list[int]:
    """Entries per ``operation`` request the client sends from now on (botocore's events)."""
    seen: list[int] = []

    def before_call(params: dict[str, Any], **_: Any) -> None:
        seen.append(len(params.get("Entries", [None])))

    client._connection.sqs.meta.events.register(
        f"before-parameter-build.sqs.{operation}", before_call
    )
    return seen


@pytest.mark.asyncio
async def test_send_messages_splits_by_ten_and_keeps_order(
    small_client: SqsQueueClient, name: qr.QueueName
) -> None:
    await small_client.create_queue(name, requires_session=True)
    requests = count_requests(small_client, "SendMessageBatch")
    messages = [qr.Message(f"m{i:02}".encode(), session_id="s") for i in range(23)]
    ids = await small_client.send_messages(name, messages)
    assert ids == [m.message_id for m in messages]
    assert requests == [10, 10, 3]
    async with await small_client.accept_session(name, "s") as session:
        received: list[qr.ReceivedMessage] = []
        while len(received) < 23:
            batch = await session.receive_messages(timeout=5)
            assert batch
            received.extend(batch)
            await session.complete_messages(batch)
    assert [m.body for m in received] == [m.body for m in messages]
    await small_client.delete_queue(name)


@pytest.mark.asyncio
async def test_send_messages_splits_by_size(
    small_client: SqsQueueClient, name: qr.QueueName
) -> None:
    await small_client.create_queue(name)
    requests = count_requests(small_client, "SendMessageBatch")
    bodies = [bytes([i]) * (100 * KIB) for i in range(5)]  # ~100 KiB each, 256 KiB per request
    await small_client.send_messages(name, [qr.Message(body) for body in bodies])
    assert requests == [2, 2, 1]
    received: list[qr.ReceivedMessage] = []
    while len(received) < 5:
        received.extend(await small_client.receive_messages(name, timeout=5))
    assert sorted(m.body for m in received) == bodies
    await small_client.complete_messages(received)
    await small_client.delete_queue(name)


@pytest.mark.asyncio
async def test_a_partial_batch_failure_says_what_was_not_sent(
    client: SqsQueueClient, name: qr.QueueName, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.create_queue(name)
    real_call = client._connection.call
    batches = 0

    async def flaky_call(operation: str, /, **params: Any) -> Any:
        """SQS refuses entry 12 (in the second request); the rest go through for real."""
        nonlocal batches
        if operation != "SendMessageBatch":
            return await real_call(operation, **params)
        batches += 1
        refused = [e for e in params["Entries"] if e["Id"] == "12"]
        kept = [e for e in params["Entries"] if e["Id"] != "12"]
        response = await real_call(operation, **{**params, "Entries": kept})
        response["Failed"] = [
            {"Id": e["Id"], "Code": "InternalError", "Message": "boom", "SenderFault": False}
            for e in refused
        ]
        return response

    monkeypatch.setattr(client._connection, "call", flaky_call)
    messages = [qr.Message(f"m{i}".encode()) for i in range(25)]
    with pytest.raises(qr.BatchSendError) as caught:
        await client.send_messages(name, messages)
    error = caught.value
    assert batches == 2  # nothing is sent after a failure: it would overtake the failed one
    assert error.sent == tuple(m.message_id for m in messages[:12] + messages[13:20])
    assert [mid for mid, _ in error.failed] == [
        m.message_id for m in messages[12:13] + messages[20:]
    ]
    assert "InternalError: boom" in error.failed[0][1]
    assert error.retryable is True  # SQS's fault, not ours
    monkeypatch.undo()

    received: list[qr.ReceivedMessage] = []
    while batch := await client.receive_messages(name, timeout=0.5):
        received.extend(batch)
    assert sorted(m.message_id for m in received) == sorted(error.sent)
    await client.complete_messages(received)
    await client.delete_queue(name)


@pytest.mark.asyncio
async def test_a_failed_request_after_the_first_is_a_batch_send_error(
    client: SqsQueueClient, name: qr.QueueName, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.create_queue(name)
    real_call = client._connection.call
    batches = 0

    async def dropping_call(operation: str, /, **params: Any) -> Any:
        nonlocal batches
        if operation == "SendMessageBatch":
            batches += 1
            if batches == 2:
                raise qr.ConnectionError("the network went away")
        return await real_call(operation, **params)

    monkeypatch.setattr(client._connection, "call", dropping_call)
    messages = [qr.Message(f"m{i}".encode()) for i in range(15)]
    with pytest.raises(qr.BatchSendError) as caught:
        await client.send_messages(name, messages)
    assert caught.value.sent == tuple(m.message_id for m in messages[:10])
    assert [mid for mid, _ in caught.value.failed] == [m.message_id for m in messages[10:]]
    assert caught.value.retryable is True
    assert isinstance(caught.value.__cause__, qr.ConnectionError)

    # a failure of the very first request sent nothing: the plain error says so
    batches = 1
    with pytest.raises(qr.ConnectionError):
        await client.send_messages(name, messages)
    monkeypatch.undo()
    await client.delete_queue(name)
