"""create_queue/delete_queue on SQS: FIFO queues with a FIFO DLQ and a redrive policy, standard
queues with a standard DLQ, idempotency, and names or settings SQS cannot take."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqs_helpers import attributes_of, url_of

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient

pytestmark = pytest.mark.asyncio


async def test_a_session_queue_is_a_fifo_queue_with_a_fifo_dlq_and_redrive(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True, max_delivery_count=7, lock_duration=45)
    queue = attributes_of(boto, f"{name}.fifo")
    dead_letter = attributes_of(boto, f"{name}-dlq.fifo")
    assert queue["FifoQueue"] == "true" and dead_letter["FifoQueue"] == "true"
    assert queue["VisibilityTimeout"] == "45"
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dead_letter["QueueArn"], "maxReceiveCount": 7}
    # messages are kept until settled, as long as SQS allows
    assert queue["MessageRetentionPeriod"] == dead_letter["MessageRetentionPeriod"] == "1209600"
    await client.delete_queue(name)


async def test_a_queue_without_sessions_is_a_standard_queue_with_a_dlq(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, max_delivery_count=3)
    queue = attributes_of(boto, str(name))
    assert "FifoQueue" not in queue or queue["FifoQueue"] == "false"
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 3
    assert redrive["deadLetterTargetArn"] == attributes_of(boto, f"{name}-dlq")["QueueArn"]
    await client.delete_queue(name)
    with pytest.raises(Exception, match=r"NonExistentQueue|QueueDoesNotExist"):
        url_of(boto, f"{name}-dlq")


async def test_create_queue_is_idempotent_and_refuses_other_settings(
    client: SqsQueueClient, other_client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True, lock_duration=10)
    await client.create_queue(name, requires_session=True, lock_duration=10)
    # another client finds it on SQS, with its settings
    await other_client.create_queue(name, requires_session=True, lock_duration=10.0)
    for settings in (
        {"requires_session": True, "lock_duration": 11},
        {"requires_session": True, "lock_duration": 10, "max_delivery_count": 3},
        {"requires_session": False, "lock_duration": 10},
        {"requires_session": True, "lock_duration": 10, "default_message_ttl": 60},
    ):
        with pytest.raises(qr.QueueAlreadyExists):
            await other_client.create_queue(name, **settings)  # type: ignore[arg-type]
    await client.delete_queue(name)


async def test_queue_ttl_settings_survive_a_lookup(
    client: SqsQueueClient, other_client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, default_message_ttl=90.5, dead_letter_on_expiration=True)
    await other_client.create_queue(name, default_message_ttl=90.5, dead_letter_on_expiration=True)
    with pytest.raises(qr.QueueAlreadyExists):
        await other_client.create_queue(name, default_message_ttl=90.5)
    await client.delete_queue(name)


@pytest.mark.parametrize(
    ("queue", "settings"),
    [
        ("has.dots", {}),
        ("has.dots", {"requires_session": True}),
        ("standard.fifo", {}),
        ("x" * 72, {"requires_session": True}),  # + "-dlq.fifo" > 80
        ("x" * 77, {}),  # + "-dlq" > 80
        ("ok", {"lock_duration": 1.5}),  # SQS takes whole seconds
        ("ok", {"max_delivery_count": 1001}),  # maxReceiveCount is 1-1000
        ("ok", {"lock_duration": 0}),
    ],
)
async def test_names_and_settings_sqs_cannot_take_are_validation_errors(
    client: SqsQueueClient, boto: Any, queue: str, settings: dict[str, Any]
) -> None:
    before = boto.list_queues().get("QueueUrls", [])
    with pytest.raises(qr.ValidationError):
        await client.create_queue(queue, **settings)
    assert boto.list_queues().get("QueueUrls", []) == before


async def test_the_longest_names_sqs_takes(client: SqsQueueClient, boto: Any) -> None:
    session_name, plain_name = "s" * 71, "p" * 76
    await client.create_queue(session_name, requires_session=True)
    await client.create_queue(plain_name)
    assert url_of(boto, "s" * 71 + "-dlq.fifo") and url_of(boto, "p" * 76 + "-dlq")
    await client.delete_queue(session_name)
    await client.delete_queue(plain_name)


async def test_an_explicit_fifo_name_is_kept(client: SqsQueueClient, boto: Any) -> None:
    await client.create_queue("explicit.fifo", requires_session=True)
    assert url_of(boto, "explicit.fifo") and url_of(boto, "explicit-dlq.fifo")
    await client.send_message("explicit.fifo", qr.Message(b"x", session_id="s"))
    async with await client.accept_session("explicit.fifo", "s") as session:
        got = await session.receive_message(timeout=5)
        assert got is not None
        await session.complete_message(got)
    await client.delete_queue("explicit.fifo")


async def test_a_queue_deleted_behind_the_clients_back_is_not_found(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name)
    await client.send_message(name, qr.Message(b"x"))  # the client knows the queue now
    boto.delete_queue(QueueUrl=url_of(boto, str(name)))
    with pytest.raises(qr.QueueNotFound) as caught:
        await client.send_message(name, qr.Message(b"y"))
    # the original is chained, and no botocore error crossed the port
    assert type(caught.value.__cause__).__module__.startswith("botocore")
    with pytest.raises(qr.QueueNotFound):
        await client.receive_message(name, timeout=0)
