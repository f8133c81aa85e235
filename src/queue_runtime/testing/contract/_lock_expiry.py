"""Behaviour 6: unsettled messages come back after their lock; renewals extend locks.

Also the session-lock clarification: once a session lock lapses, every operation on that
`SessionClient` raises `SessionLockLost` (a waiting receive too) and ``close()`` is a no-op.
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
    session_complete_exactly,
    session_receive_one,
)

__all__ = ["LockExpiryContract"]


def _lock_seconds(target: ContractTarget) -> float:
    return target.short_lock.total_seconds()


class LockExpiryContract(ContractFixtures):
    async def test_an_unsettled_message_is_delivered_again_after_its_lock(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock()
        await client.send_message(queue, qr.Message(b"slow"))
        first = await receive_one(client, contract_target, queue)
        assert first.locked_until is not None
        # locked: nobody else gets it meanwhile
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        await contract_target.advance(_lock_seconds(contract_target) + 1)

        again = await receive_one(client, contract_target, queue)
        assert (again.message_id, again.body, again.delivery_count) == (
            first.message_id,
            b"slow",
            2,
        )
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(first)
        await client.complete_message(again)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None

    async def test_settling_after_the_lock_expired_raises_message_lock_lost(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock()
        await client.send_message(queue, qr.Message(b"late"))
        lapse = _lock_seconds(contract_target) + 1

        expired = await receive_one(client, contract_target, queue)
        await contract_target.advance(lapse)
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(expired)

        expired = await receive_one(client, contract_target, queue)
        assert expired.delivery_count == 2
        await contract_target.advance(lapse)
        with pytest.raises(qr.MessageLockLost):
            await client.abandon_message(expired)

        expired = await receive_one(client, contract_target, queue)
        assert expired.delivery_count == 3
        await contract_target.advance(lapse)
        with pytest.raises(qr.MessageLockLost):
            await client.dead_letter_message(expired, reason="too late")

        if "lock_renewal" in client.capabilities:
            expired = await receive_one(client, contract_target, queue)
            await contract_target.advance(lapse)
            with pytest.raises(qr.MessageLockLost):
                await client.renew_message_lock(expired)

        # none of the failed settlements did anything: the message is still there, once
        [last] = await assert_holds(client, contract_target, queue, [b"late"])
        assert last.delivery_count == (5 if "lock_renewal" in client.capabilities else 4)
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_renew_message_lock_extends_the_lock(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock()
        await client.send_message(queue, qr.Message(b"long job"))
        got = await receive_one(client, contract_target, queue)
        if "lock_renewal" not in client.capabilities:
            with pytest.raises(qr.UnsupportedOperation):
                await client.renew_message_lock(got)
            await client.complete_message(got)
            return
        assert got.locked_until is not None
        step = 0.6 * _lock_seconds(contract_target)
        await contract_target.advance(step)
        renewed = await client.renew_message_lock(got)
        assert renewed > got.locked_until
        await contract_target.advance(step)  # past the original lock, within the renewed one
        await client.complete_message(got)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None

    async def test_renew_message_lock_of_a_settled_message_raises_message_lock_lost(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(b"x"))
        got = await receive_one(client, contract_target, queue)
        await client.complete_message(got)
        expected = (
            qr.MessageLockLost if "lock_renewal" in client.capabilities else qr.UnsupportedOperation
        )
        with pytest.raises(expected):
            await client.renew_message_lock(got)

    async def test_after_the_session_lock_lapses_every_operation_raises_session_lock_lost(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queues: QueueFactory,
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True)
        await client.send_messages(
            queue, [qr.Message(b"m0", session_id="s"), qr.Message(b"m1", session_id="s")]
        )
        session = await accept(client, queue, "s")
        held = await session_receive_one(session, contract_target)
        await contract_target.advance(_lock_seconds(contract_target) + 1)

        with pytest.raises(qr.SessionLockLost):
            await session.receive_message(timeout=0)
        with pytest.raises(qr.SessionLockLost):
            await session.receive_messages(max_messages=2, timeout=0)
        with pytest.raises(qr.SessionLockLost):
            await session.complete_message(held)
        with pytest.raises(qr.SessionLockLost):
            await session.abandon_message(held)
        with pytest.raises(qr.SessionLockLost):
            await session.dead_letter_message(held, reason="late")
        if "lock_renewal" in client.capabilities:
            with pytest.raises(qr.SessionLockLost):
                await session.renew_session_lock()
        if "session_state" in client.capabilities:
            with pytest.raises(qr.SessionLockLost):
                await session.get_state()
            with pytest.raises(qr.SessionLockLost):
                await session.set_state(b"too late")
        await session.close()  # a no-op after expiry
        await session.close()

        # nothing was settled: the session resumes at m0, for anyone
        async with await accept(second_client, queue, "s") as again:
            received = await session_complete_exactly(again, contract_target, 2)
            assert [(m.body, m.delivery_count) for m in received] == [(b"m0", 2), (b"m1", 1)]
            if "session_state" in client.capabilities:
                assert await again.get_state() is None
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_a_session_receive_that_outlives_the_lock_raises_session_lock_lost(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True)
        session = await accept(client, queue, "s")
        lock = _lock_seconds(contract_target)
        waiting = asyncio.ensure_future(
            session.receive_message(timeout=lock + 2 * contract_target.receive_timeout)
        )
        await asyncio.sleep(0)
        await contract_target.advance(lock + 1)
        with pytest.raises(qr.SessionLockLost):
            await asyncio.wait_for(waiting, timeout=lock + 3 * contract_target.receive_timeout)
        await session.close()

    async def test_renew_session_lock_extends_the_lock(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queues: QueueFactory,
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True)
        await client.send_messages(
            queue, [qr.Message(b"m0", session_id="s"), qr.Message(b"m1", session_id="s")]
        )
        async with await accept(client, queue, "s") as session:
            held = await session_receive_one(session, contract_target)
            if "lock_renewal" not in client.capabilities:
                with pytest.raises(qr.UnsupportedOperation):
                    await session.renew_session_lock()
                await session.complete_message(held)
                return
            before = session.locked_until
            step = 0.6 * _lock_seconds(contract_target)
            await contract_target.advance(step)
            renewed = await session.renew_session_lock()
            assert renewed > before
            assert session.locked_until == renewed
            await contract_target.advance(step)  # past the original lock, within the renewed one

            if "exclusive_sessions_across_processes" in client.capabilities:
                with pytest.raises(qr.SessionLocked):
                    await second_client.accept_session(queue, "s")
            await session.complete_message(held)  # its lock was renewed with the session's
            nxt = await session_receive_one(session, contract_target)
            assert (nxt.body, nxt.delivery_count) == (b"m1", 1)
            await session.complete_message(nxt)
