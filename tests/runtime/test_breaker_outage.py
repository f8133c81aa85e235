"""A dependency that goes down trips the breaker: the processor stops taking messages, probes
now and then, and completes everything once the dependency is back."""

from __future__ import annotations

import asyncio
import math

import pytest
from runtime_helpers import eventually

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient


@pytest.mark.asyncio
@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_an_outage_trips_the_breaker_and_everything_completes_once_it_is_back(
    client: InMemoryQueueClient, sessions: bool
) -> None:
    await client.create_queue("payments", requires_session=sessions, max_delivery_count=50)
    total = 40
    await client.send_messages(
        "payments",
        [
            qr.Message(f"{n}".encode(), session_id=f"c{n % 4}" if sessions else None)
            for n in range(total)
        ],
    )
    down = True
    calls_while_down = 0
    completed: list[bytes] = []
    states: set[str] = set()

    async def charge(message: qr.ReceivedMessage) -> None:
        nonlocal calls_while_down
        await asyncio.sleep(0.001)
        if down:
            calls_while_down += 1
            states.add(processor.health().breaker)  # a probe sees it half-open
            raise ConnectionRefusedError("payment gateway down")
        completed.append(message.body)

    threshold, recovery, concurrency, outage = 3, 0.1, 2, 0.45
    processor = qr.Processor(
        client,
        "payments",
        charge,
        max_concurrency=concurrency,
        max_concurrent_sessions=concurrency,
        retry=qr.RetryPolicy(max_attempts=20, initial_delay=0.001, max_delay=0.005),
        circuit_breaker=qr.CircuitBreaker(failure_threshold=threshold, recovery_timeout=recovery),
    )
    async with processor:
        loop = asyncio.get_running_loop()
        end = loop.time() + outage
        while loop.time() < end:
            health = processor.health()
            states.add(health.breaker)
            if health.breaker == "open":
                assert not health.ready
            await asyncio.sleep(0.005)
        down = False
        await eventually(lambda: len(completed) == total)
        assert processor.health().breaker == "closed"
    probes = math.ceil(outage / recovery) + 1
    assert calls_while_down <= threshold + concurrency + probes, calls_while_down
    assert {"open", "half_open"} <= states
    assert sorted(completed, key=int) == [f"{n}".encode() for n in range(total)]
    assert client.statistics(qr.QueueName("payments").dead_letter).active == 0
    assert client.statistics("payments").completed == total


@pytest.mark.asyncio
async def test_without_a_breaker_the_same_outage_burns_messages_to_the_dead_letter_queue(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("payments")
    await client.send_messages("payments", [qr.Message(b"m") for _ in range(10)])

    async def charge(message: qr.ReceivedMessage) -> None:
        raise ConnectionRefusedError("payment gateway down")

    processor = qr.Processor(
        client,
        "payments",
        charge,
        retry=qr.RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.002),
        circuit_breaker=None,
    )
    async with processor:
        await eventually(
            lambda: client.statistics(qr.QueueName("payments").dead_letter).active == 10
        )
    assert processor.counters.failures == 30
