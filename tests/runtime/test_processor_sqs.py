"""The processor on SQS (moto's server over HTTP): where locks are real visibility timeouts,
a slow handler keeps its lock, and sessions (FIFO groups) keep their order."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import queue_runtime as qr

pytest.importorskip("boto3")

from runtime_helpers import eventually

from queue_runtime.adapters.sqs import SqsQueueClient


@pytest_asyncio.fixture
async def sqs(moto_server: str) -> AsyncIterator[SqsQueueClient]:
    config = qr.AwsSqsConfig(
        region="us-east-1",
        endpoint_url=moto_server,
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with SqsQueueClient(config, default_timeout=1) as client:
        yield client


@pytest.mark.slow
@pytest.mark.asyncio
@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_on_sqs_a_handler_slower_than_the_lock_keeps_it_and_is_called_once(
    sqs: SqsQueueClient, sessions: bool
) -> None:
    queue = f"slow-{secrets.token_hex(4)}"
    # 3 s locks (not SQS's 1 s minimum): a renewal is an HTTP call to a server in this very
    # process, and on a loaded machine one can take a good part of a second; renewals start
    # 1.8 s before a lock lapses, which leaves it 1.6 s (the adapter trusts a lock to 0.2 s)
    await sqs.create_queue(queue, requires_session=sessions, lock_duration=3)
    await sqs.send_message(queue, qr.Message(b"slow", session_id="s" if sessions else None))
    calls = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(7)  # more than two lock durations

    processor = qr.Processor(sqs, queue, handle, receive_timeout=0.5)
    async with processor:
        await eventually(lambda: processor.counters.completed == 1, 40)
        await asyncio.sleep(3.5)  # a lapsed lock would have redelivered it by now
    assert calls == 1
    assert processor.counters.lock_renewals >= 2
    assert processor.counters.locks_lost == 0


@pytest.mark.slow
@pytest.mark.asyncio
async def test_on_sqs_sessions_keep_order_through_retries_and_dead_letters(
    sqs: SqsQueueClient,
) -> None:
    queue = f"order-{secrets.token_hex(4)}"
    await sqs.create_queue(queue, requires_session=True, lock_duration=5, max_delivery_count=10)
    await sqs.send_messages(
        queue,
        [qr.Message(f"{s}:{n}".encode(), session_id=f"s{s}") for n in range(4) for s in range(3)],
    )
    done: dict[str, list[int]] = {}

    async def handle(message: qr.ReceivedMessage) -> None:
        s, n = message.body.decode().split(":")
        if n == "1" and message.delivery_count == 1:
            raise OSError("flaky")
        if s == "2" and n == "2":
            raise qr.PermanentError("bad order")
        done.setdefault(s, []).append(int(n))

    retry = qr.RetryPolicy(initial_delay=0.01, max_delay=0.05)
    async with qr.Processor(sqs, queue, handle, retry=retry, receive_timeout=0.5):
        await eventually(lambda: sum(map(len, done.values())) == 11, 30)
    assert done == {"0": [0, 1, 2, 3], "1": [0, 1, 2, 3], "2": [0, 1, 3]}
    (dead,) = await sqs.receive_messages(qr.QueueName(queue).dead_letter, timeout=1)
    assert (dead.body, dead.dead_letter_reason) == (b"2:2", "permanent-error")
