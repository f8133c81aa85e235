"""The Processor's own promises, on every adapter of ``conftest.TARGET_FACTORIES``.

A graceful stop never costs a delivery of a message that no handler started: with
``max_delivery_count=2``, two stops in a row (each of a new client, as a restarted worker
would have) leave every unhandled message deliverable, first handled at delivery 1, and
nothing dead-lettered.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

import queue_runtime as qr
from queue_runtime.testing import ContractTarget

pytestmark = pytest.mark.asyncio

MESSAGES = 12


async def _run_until_first_handled(
    target: ContractTarget, queue: str, handled: dict[bytes, list[int]], *, slow: bool
) -> None:
    """A processor on a client of its own, stopped as soon as its first handler started (a
    slow one: the stop finds work in flight), or once the queue is drained."""
    started, drained = asyncio.Event(), asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        handled.setdefault(message.body, []).append(message.delivery_count)
        started.set()
        if len(handled) == MESSAGES:
            drained.set()
        if slow:
            await asyncio.sleep(0.3)

    async with target.make_client() as client:
        processor = qr.Processor(
            client,
            queue,
            handle,
            max_concurrency=2,
            max_concurrent_sessions=2,
            receive_timeout=1.0,
        )
        async with processor:
            await asyncio.wait_for((started if slow else drained).wait(), 120)
        assert processor.counters.abandoned == 0


@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_two_stops_in_a_row_cost_no_unstarted_message_a_delivery(
    contract_target: ContractTarget, sessions: bool
) -> None:
    async with contract_target.make_client() as client:
        if sessions and "sessions" not in client.capabilities:
            pytest.skip("the adapter has no sessions")
        queue = qr.QueueName(f"stop-{secrets.token_hex(4)}")
        await client.create_queue(
            queue,
            requires_session=sessions,
            max_delivery_count=2,
            lock_duration=timedelta(seconds=30),
        )
        try:
            await client.send_messages(
                queue,
                [
                    qr.Message(b"%02d" % n, session_id=f"s{n % 2}" if sessions else None)
                    for n in range(MESSAGES)
                ],
            )
            handled: dict[bytes, list[int]] = {}
            for _ in range(2):
                await _run_until_first_handled(contract_target, queue, handled, slow=True)
            await _run_until_first_handled(contract_target, queue, handled, slow=False)
            assert sorted(handled) == [b"%02d" % n for n in range(MESSAGES)]
            # each handled once, at its first delivery: no stop charged it one
            assert {body: counts for body, counts in handled.items() if counts != [1]} == {}
            if "peek" in client.capabilities:
                assert await client.peek_messages(queue.dead_letter) == []
            else:
                assert await client.receive_messages(queue.dead_letter, timeout=0.5) == []
        finally:
            await client.delete_queue(queue)
