"""Behaviour 2: a session's messages arrive in send order, across batches, abandons and expiry."""

from __future__ import annotations

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    accept_next,
    session_complete_exactly,
    session_receive_exactly,
    session_receive_one,
)

__all__ = ["SessionOrderContract"]


def _bodies(messages: list[qr.ReceivedMessage]) -> list[bytes]:
    return [m.body for m in messages]


class SessionOrderContract(ContractFixtures):
    async def test_session_messages_arrive_in_send_order_across_batches(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        expected = [f"a-{i:02}".encode() for i in range(12)]
        # single sends and batches, interleaved with another session's messages
        await client.send_messages(
            session_queue, [qr.Message(b, session_id="a") for b in expected[:4]]
        )
        await client.send_message(session_queue, qr.Message(b"b-0", session_id="b"))
        for body in expected[4:7]:
            await client.send_message(session_queue, qr.Message(body, session_id="a"))
        await client.send_message(session_queue, qr.Message(b"b-1", session_id="b"))
        await client.send_messages(
            session_queue, [qr.Message(b, session_id="a") for b in expected[7:]]
        )

        async with await accept(client, session_queue, "a") as session:
            received: list[qr.ReceivedMessage] = []
            while len(received) < len(expected):
                batch = await session.receive_messages(
                    max_messages=5, timeout=contract_target.receive_timeout
                )
                assert batch, f"session 'a' ran dry after {_bodies(received)!r}"
                assert len(batch) <= 5
                received.extend(batch)
                for message in batch:
                    await session.complete_message(message)
            assert _bodies(received) == expected
            assert all(m.session_id == "a" for m in received)
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None
        async with await accept(client, session_queue, "b") as session:
            received = await session_complete_exactly(session, contract_target, 2)
            assert _bodies(received) == [b"b-0", b"b-1"]

    async def test_abandoned_message_comes_back_before_later_ones(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(4)]
        )
        async with await accept_next(client, contract_target, session_queue) as session:
            first = await session_receive_one(session, contract_target)
            assert first.body == b"m0"
            await session.abandon_message(first)
            again = await session_receive_one(session, contract_target)
            assert (again.body, again.delivery_count) == (b"m0", 2)
            await session.complete_message(again)

            # a whole batch abandoned (last first) comes back in send order
            batch = await session_receive_exactly(session, contract_target, 3)
            assert _bodies(batch) == [b"m1", b"m2", b"m3"]
            for message in reversed(batch):
                await session.abandon_message(message)
            batch = await session_receive_exactly(session, contract_target, 3)
            assert _bodies(batch) == [b"m1", b"m2", b"m3"]
            assert [m.delivery_count for m in batch] == [2, 2, 2]
            for message in batch:
                await session.complete_message(message)

    async def test_unsettled_messages_come_back_first_after_close(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(3)]
        )
        async with await accept(client, session_queue, "s") as session:
            first = await session_receive_one(session, contract_target)
            await session.complete_message(first)
            second = await session_receive_one(session, contract_target)
            assert second.body == b"m1"
            # closed with m1 unsettled
        await client.send_message(session_queue, qr.Message(b"m3", session_id="s"))
        async with await accept_next(second_client, contract_target, session_queue) as session:
            assert session.session_id == "s"
            rest = await session_complete_exactly(session, contract_target, 3)
            assert _bodies(rest) == [b"m1", b"m2", b"m3"]
            assert [m.delivery_count for m in rest] == [2, 1, 1]

    async def test_expired_messages_come_back_first_after_lock_expiry(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queues: QueueFactory,
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True)
        await client.send_messages(
            queue, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(4)]
        )
        session = await accept(client, queue, "s")
        held = await session.receive_messages(
            max_messages=2, timeout=contract_target.receive_timeout
        )
        if len(held) == 1:  # "up to" max_messages: fetch the second one
            held.append(await session_receive_one(session, contract_target))
        assert _bodies(held) == [b"m0", b"m1"]
        await contract_target.advance(contract_target.short_lock.total_seconds() + 1)
        await session.close()  # a no-op: the lock has lapsed

        async with await accept(second_client, queue, "s") as session:
            received = await session_complete_exactly(session, contract_target, 4)
            assert _bodies(received) == [b"m0", b"m1", b"m2", b"m3"]
            assert [m.delivery_count for m in received] == [2, 2, 1, 1]
