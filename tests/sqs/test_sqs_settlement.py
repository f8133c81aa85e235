"""Settling on SQS: delete, visibility 0, ChangeMessageVisibility, the stale-receipt guard, and
dead-lettering (explicit, with reason attributes; and by the redrive policy)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqs_helpers import url_of

import queue_runtime as qr
from queue_runtime.adapters.sqs import SqsQueueClient
from queue_runtime.adapters.sqs._codec import REDRIVE_DESCRIPTION

pytestmark = pytest.mark.asyncio


async def test_moto_honours_a_stale_receipt_handle_which_is_why_the_adapter_guards(
    boto: Any, name: qr.QueueName
) -> None:
    url = boto.create_queue(QueueName=str(name), Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    boto.send_message(QueueUrl=url, MessageBody="x")
    stale = boto.receive_message(QueueUrl=url)["Messages"][0]["ReceiptHandle"]
    await asyncio.sleep(1.2)
    assert boto.receive_message(QueueUrl=url)["Messages"]  # someone else has it now
    boto.delete_message(QueueUrl=url, ReceiptHandle=stale)  # accepted: it deletes their message
    attributes = boto.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    boto.delete_queue(QueueUrl=url)


async def test_settling_after_the_lock_lapsed_is_refused_before_any_call(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=1)
    await client.send_message(name, qr.Message(b"x"))
    first = await client.receive_message(name, timeout=5)
    assert first is not None and first.locked_until is not None
    await asyncio.sleep(1.2)
    again = await client.receive_message(name, timeout=5)  # delivered to someone else
    assert again is not None and again.delivery_count == 2
    for settle in (client.complete_message, client.abandon_message, client.renew_message_lock):
        with pytest.raises(qr.MessageLockLost):
            await settle(first)
    with pytest.raises(qr.MessageLockLost):
        await client.dead_letter_message(first, reason="late")
    # the current holder is unaffected: its message was neither deleted nor released
    assert await client.receive_message(name, timeout=0) is None
    await client.complete_message(again)
    await client.delete_queue(name)


async def test_a_lock_is_refused_a_little_before_sqs_would_lapse_it(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=1)
    await client.send_message(name, qr.Message(b"x"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None and got.locked_until is not None
    await asyncio.sleep(0.85)  # SQS still has it in flight, but a delete might arrive late
    with pytest.raises(qr.MessageLockLost):
        await client.complete_message(got)
    await client.delete_queue(name)


async def test_renewal_extends_the_visibility_in_sqs(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, lock_duration=1)
    await client.send_message(name, qr.Message(b"x"))
    got = await client.receive_message(name, timeout=5)
    assert got is not None and got.locked_until is not None
    for _ in range(3):
        await asyncio.sleep(0.5)
        renewed = await client.renew_message_lock(got)
        assert renewed > got.locked_until
    # 1.5 s after receiving with a 1 s lock, SQS still has it in flight
    raw = boto.receive_message(QueueUrl=url_of(boto, str(name)))
    assert "Messages" not in raw
    await client.complete_message(got)
    await client.delete_queue(name)


async def test_explicit_dead_lettering_keeps_the_group_and_writes_the_reason(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, requires_session=True)
    await client.send_message(name, qr.Message(b"\xffpoison", session_id="pr-7"))
    async with await client.accept_session(name, "pr-7") as session:
        got = await session.receive_message(timeout=5)
        assert got is not None
        await session.dead_letter_message(got, reason="bad-payload", description="not JSON")
    raw = boto.receive_message(
        QueueUrl=url_of(boto, f"{name}-dlq.fifo"),
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["MessageGroupId"],
        VisibilityTimeout=0,
    )["Messages"][0]
    assert raw["Attributes"]["MessageGroupId"] == "pr-7"
    assert raw["MessageAttributes"]["qr-body"]["BinaryValue"] == b"\xffpoison"
    meta = json.loads(raw["MessageAttributes"]["qr-meta"]["StringValue"])
    assert meta["dead_letter_reason"] == "bad-payload"
    assert meta["dead_letter_description"] == "not JSON"
    # and it left the queue
    assert await client.accept_session(name, timeout=0) is None
    await client.delete_queue(name)


async def test_the_redrive_policy_moves_with_reason_max_delivery_count_exceeded(
    client: SqsQueueClient, boto: Any, name: qr.QueueName
) -> None:
    await client.create_queue(name, max_delivery_count=2)
    sent = qr.Message(b"flaky", attributes={"a": "b"}, correlation_id="c")
    await client.send_message(name, sent)
    for count in (1, 2):
        got = await client.receive_message(name, timeout=5)
        assert got is not None and got.delivery_count == count
        await client.abandon_message(got)
    # SQS moves it on the receive after the second delivery
    assert await client.receive_message(name, timeout=0) is None
    raw = boto.receive_message(
        QueueUrl=url_of(boto, f"{name}-dlq"), MessageAttributeNames=["All"], VisibilityTimeout=0
    )["Messages"][0]
    assert "dead_letter_reason" not in raw["MessageAttributes"].get("qr-meta", {}).get(
        "StringValue", ""
    )
    dead = await client.receive_message(name.dead_letter, timeout=5)
    assert dead is not None
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert dead.dead_letter_description == REDRIVE_DESCRIPTION
    assert (dead.message_id, dict(dead.attributes), dead.correlation_id) == (
        sent.message_id,
        {"a": "b"},
        "c",
    )
    with pytest.raises(qr.ValidationError):
        await client.dead_letter_message(dead, reason="again")
    await client.complete_message(dead)
    await client.delete_queue(name)


async def test_complete_messages_deletes_in_batches(
    client: SqsQueueClient, name: qr.QueueName
) -> None:
    await client.create_queue(name)
    await client.send_messages(name, [qr.Message(f"m{i}".encode()) for i in range(12)])
    received: list[qr.ReceivedMessage] = []
    while len(received) < 12:
        received.extend(await client.receive_messages(name, timeout=5))
    await client.complete_messages(received[:1])
    # a batch with a settled message: the others are completed, the settled one named
    with pytest.raises(qr.BatchSettleError) as caught:
        await client.complete_messages(received)
    assert caught.value.settled == tuple(m.message_id for m in received[1:])
    assert [mid for mid, _ in caught.value.failed] == [received[0].message_id]
    assert isinstance(caught.value.failed[0][1], qr.MessageLockLost)
    assert caught.value.unknown == ()
    assert await client.receive_message(name, timeout=0) is None
    await client.delete_queue(name)
