"""The in-memory adapter's helpers for users' tests: statistics and peek."""

from __future__ import annotations

import pytest

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient


@pytest.mark.asyncio
async def test_statistics_and_peek_follow_the_messages() -> None:
    clock = qr.ManualClock()
    async with InMemoryQueueClient(clock=clock) as client:
        q = qr.QueueName("introspect")
        await client.create_queue(q, lock_duration=10)
        await client.send_messages(q, [qr.Message(b"1"), qr.Message(b"2"), qr.Message(b"3")])
        peeked = await client.peek_messages(q, max_messages=2)
        assert [m.body for m in peeked] == [b"1", b"2"]
        first = await client.receive_message(q, timeout=0)
        assert first is not None
        await client.dead_letter_message(first, reason="r")
        held = await client.receive_message(q, timeout=0)
        assert held is not None
        stats = client.statistics(q)
        assert (stats.active, stats.locked, stats.dead_letter, stats.total) == (1, 1, 1, 2)
        # peek shows the locked message too, without touching its delivery count
        assert [(m.body, m.delivery_count) for m in await client.peek_messages(q)] == [
            (b"2", 1),
            (b"3", 0),
        ]
        assert await client.get_queue_statistics(q) == stats
        clock.advance(10)  # the lock lapses: the message is available again, first
        assert [m.body for m in await client.peek_messages(q)] == [b"2", b"3"]
        dead = await client.peek_messages(q.dead_letter)
        assert [(m.body, m.dead_letter_reason, m.receipt) for m in dead] == [(b"1", "r", None)]
        with pytest.raises(qr.ValidationError):
            await client.peek_messages(q, max_messages=0)
        with pytest.raises(qr.ValidationError):
            await client.complete_message(dead[0])
