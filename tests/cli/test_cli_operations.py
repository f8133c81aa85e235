"""The redrive's bookkeeping where a provider fails it, on the in-memory adapter's manual clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient
from queue_runtime.cli._operations import StopSignal, redrive


async def _setup(client: qr.QueueClient, count: int) -> qr.QueueName:
    queue = qr.QueueName("orders")
    await client.create_queue(queue, lock_duration=10)
    await client.send_messages(queue, [qr.Message(f"m{i}".encode()) for i in range(count)])
    for message in await client.receive_messages(queue, max_messages=count, timeout=0):
        await client.dead_letter_message(message, reason="bad")
    return queue


@pytest.mark.asyncio
@pytest.mark.parametrize("limit", [3, None])
async def test_a_lock_lost_before_the_complete_is_never_sent_twice(
    monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """The dead letters come back after the send; with room left they are only completed."""
    clock = qr.ManualClock()
    async with InMemoryQueueClient(clock=clock) as client:
        queue = await _setup(client, 3)
        real_send = InMemoryQueueClient.send_messages

        async def slow_send(self: Any, target: Any, messages: Any) -> Any:
            ids = await real_send(self, target, messages)
            clock.advance(timedelta(seconds=11))  # the dead letters' locks lapse meanwhile
            return ids

        monkeypatch.setattr(InMemoryQueueClient, "send_messages", slow_send)
        report = await redrive(
            client,
            queue,
            limit=limit,
            session_id=None,
            batch_size=3,
            timeout=0,
            stop=StopSignal(asyncio.get_running_loop()),
            progress=lambda n: None,
        )
        counts = await client.get_queue_statistics(queue)
        if limit == 3:  # stopped right after: reported, in both places with the same ids
            assert report.moved == [] and len(report.doubled) == 3
            assert (counts.active, counts.dead_letter) == (3, 3)
        else:
            assert len(report.moved) == 3 and report.doubled == []
            assert (counts.active, counts.dead_letter) == (3, 0)


@pytest.mark.asyncio
async def test_a_stop_before_the_first_batch_moves_nothing() -> None:
    async with InMemoryQueueClient() as client:
        queue = await _setup(client, 2)

        stop = StopSignal(asyncio.get_running_loop())
        stop.set(2)
        report = await redrive(
            client,
            queue,
            limit=None,
            session_id=None,
            batch_size=10,
            timeout=0,
            stop=stop,
            progress=lambda n: None,
        )
        assert report.interrupted and report.moved == []
        counts = await client.get_queue_statistics(queue)
        assert (counts.active, counts.dead_letter, counts.locked) == (0, 2, 0)
