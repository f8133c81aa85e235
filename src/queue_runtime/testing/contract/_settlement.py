"""Behaviour 5: complete removes for good; abandon returns at once; settling twice fails.

Also the timeout rules: ``timeout=0`` does not wait, and a waiting receive wakes for a
message sent meanwhile.
"""

from __future__ import annotations

import asyncio

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    assert_dead_letters,
    assert_holds,
    receive_one,
    session_receive_one,
)

__all__ = ["SettlementContract"]

#: A call with ``timeout=0`` must return well within this (seconds of real time).
NO_WAIT = 1.0


class SettlementContract(ContractFixtures):
    async def test_complete_removes_the_message_for_good(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock()
        await client.send_message(queue, qr.Message(b"done"))
        got = await receive_one(client, contract_target, queue)
        await client.complete_message(got)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        # not even once its lock would have run out
        await contract_target.advance(contract_target.short_lock.total_seconds() + 1)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_abandon_makes_the_message_available_at_once(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        sent = qr.Message(b"again", attributes={"a": "1"})
        await client.send_message(queue, sent)
        first = await receive_one(client, contract_target, queue)
        assert first.delivery_count == 1
        await client.abandon_message(first)
        second = await receive_one(client, contract_target, queue)
        assert (second.message_id, second.body, dict(second.attributes)) == (
            sent.message_id,
            b"again",
            {"a": "1"},
        )
        assert second.delivery_count == 2
        await client.abandon_message(second)
        third = await receive_one(client, contract_target, queue)
        assert third.delivery_count == 3
        await client.complete_message(third)

    async def test_abandoned_session_message_comes_back_with_a_higher_delivery_count(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"s", session_id="s"))
        async with await accept(client, session_queue, "s") as session:
            first = await session_receive_one(session, contract_target)
            await session.abandon_message(first)
            second = await session_receive_one(session, contract_target)
            assert (second.message_id, second.delivery_count) == (first.message_id, 2)
            await session.complete_message(second)
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None

    async def test_settling_twice_raises_message_lock_lost_and_changes_nothing(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"completed"), qr.Message(b"abandoned")])
        first = await receive_one(client, contract_target, queue)
        second = await receive_one(client, contract_target, queue)
        completed, abandoned = (first, second) if first.body == b"completed" else (second, first)

        await client.complete_message(completed)
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(completed)
        with pytest.raises(qr.MessageLockLost):
            await client.abandon_message(completed)
        with pytest.raises(qr.MessageLockLost):
            await client.dead_letter_message(completed, reason="late")

        await client.abandon_message(abandoned)
        with pytest.raises(qr.MessageLockLost):
            await client.abandon_message(abandoned)
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(abandoned)
        with pytest.raises(qr.MessageLockLost):
            await client.dead_letter_message(abandoned)

        # the abandoned message is still there (once), the completed one is not, no DLQ entry
        [back] = await assert_holds(client, contract_target, queue, [b"abandoned"])
        assert back.delivery_count == 2
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_settling_twice_in_a_session_raises_message_lock_lost(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue, [qr.Message(b"m0", session_id="s"), qr.Message(b"m1", session_id="s")]
        )
        async with await accept(client, session_queue, "s") as session:
            first = await session_receive_one(session, contract_target)
            await session.complete_message(first)
            with pytest.raises(qr.MessageLockLost):
                await session.complete_message(first)
            with pytest.raises(qr.MessageLockLost):
                await session.abandon_message(first)
            with pytest.raises(qr.MessageLockLost):
                await session.dead_letter_message(first)
            second = await session_receive_one(session, contract_target)
            assert (second.body, second.delivery_count) == (b"m1", 1)
            await session.dead_letter_message(second, reason="r")
            with pytest.raises(qr.MessageLockLost):
                await session.complete_message(second)
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None
        [dead] = await assert_dead_letters(client, contract_target, session_queue, [b"m1"])
        assert dead.dead_letter_reason == "r"

    async def test_receive_messages_returns_at_most_max_messages(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(f"m{i}".encode()) for i in range(5)])
        batch = await client.receive_messages(
            queue, max_messages=3, timeout=contract_target.receive_timeout
        )
        assert 1 <= len(batch) <= 3
        assert len({m.message_id for m in batch}) == len(batch)
        for message in batch:
            await client.complete_message(message)
        rest = [
            f"m{i}".encode() for i in range(5) if f"m{i}".encode() not in {m.body for m in batch}
        ]
        await assert_holds(client, contract_target, queue, rest)

    async def test_timeout_zero_does_not_wait(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        queue: qr.QueueName,
        session_queue: qr.QueueName,
    ) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await client.receive_message(queue, timeout=0) is None
        assert await client.receive_messages(queue, max_messages=5, timeout=0) == []
        assert await client.accept_session(session_queue, timeout=0) is None
        assert loop.time() - started < 3 * NO_WAIT
        async with await accept(client, session_queue, "empty") as session:
            started = loop.time()
            assert await session.receive_message(timeout=0) is None
            assert await session.receive_messages(timeout=0) == []
            assert loop.time() - started < 2 * NO_WAIT

    async def test_a_waiting_receive_gets_a_message_sent_meanwhile(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queue: qr.QueueName,
    ) -> None:
        waiting = asyncio.ensure_future(
            client.receive_message(queue, timeout=3 * contract_target.receive_timeout)
        )
        await asyncio.sleep(0)
        await second_client.send_message(queue, qr.Message(b"meanwhile"))
        got = await asyncio.wait_for(waiting, timeout=3 * contract_target.receive_timeout)
        assert got is not None and got.body == b"meanwhile"
        await client.complete_message(got)

    async def test_a_waiting_accept_gets_a_session_that_becomes_ready(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        waiting = asyncio.ensure_future(
            client.accept_session(session_queue, timeout=3 * contract_target.receive_timeout)
        )
        await asyncio.sleep(0)
        await second_client.send_message(session_queue, qr.Message(b"hi", session_id="new"))
        session = await asyncio.wait_for(waiting, timeout=3 * contract_target.receive_timeout)
        assert session is not None
        async with session:
            assert session.session_id == "new"
            got = await session_receive_one(session, contract_target)
            await session.complete_message(got)
