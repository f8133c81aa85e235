"""Giving back what no handler started: ``release_messages`` and cancelled receives.

Where the adapter has ``release``, a released message comes back as if it had never been
delivered (its ``delivery_count`` is not raised), also after its lock lapsed as long as nobody
received it since; and a receive or accept cancelled while it waits takes nothing. Elsewhere
``release_messages`` is an abandon, which every adapter supports.
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
    assert_holds,
    receive_exactly,
    require,
    session_receive_exactly,
)

__all__ = ["ReleaseContract"]


class ReleaseContract(ContractFixtures):
    async def test_released_messages_come_back_without_a_delivery_counted(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"a"), qr.Message(b"b")])
        received = await receive_exactly(client, contract_target, queue, 2)
        await client.release_messages(received)
        again = await assert_holds(client, contract_target, queue, [b"a", b"b"])
        counts = [m.delivery_count for m in again]
        assert counts == ([1, 1] if "release" in client.capabilities else [2, 2])

    async def test_a_session_releases_what_it_received_ahead_and_order_holds(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        bodies = [b"%d" % i for i in range(4)]
        await client.send_messages(session_queue, [qr.Message(b, session_id="s") for b in bodies])
        async with await accept(client, session_queue, "s") as session:
            received = await session_receive_exactly(session, contract_target, 4)
            await session.complete_message(received[0])
            await session.release_messages(received[1:])
            again = await session_receive_exactly(session, contract_target, 3)
            assert [m.body for m in again] == bodies[1:]
            if "release" in client.capabilities:
                assert [m.delivery_count for m in again] == [1, 1, 1]
            await session.complete_messages(again)

    async def test_a_release_after_the_lock_lapsed_still_counts_nothing(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        require(client, "release")
        queue = await queues.create_short_lock(max_delivery_count=2)
        await client.send_message(queue, qr.Message(b"kept"))
        for _ in range(3):  # with deliveries counted, the third would be past the maximum
            [message] = await receive_exactly(client, contract_target, queue, 1)
            assert message.delivery_count == 1
            await contract_target.advance(contract_target.short_lock.total_seconds() + 0.5)
            await client.release_messages([message])
        [message] = await receive_exactly(client, contract_target, queue, 1)
        await client.complete_message(message)
        # once someone else received it, the old delivery can no longer be given back
        await client.send_message(queue, qr.Message(b"taken"))
        [first] = await receive_exactly(client, contract_target, queue, 1)
        await contract_target.advance(contract_target.short_lock.total_seconds() + 0.5)
        [second] = await receive_exactly(client, contract_target, queue, 1)
        assert second.delivery_count == 2
        with pytest.raises(qr.BatchSettleError) as refused:
            await client.release_messages([first])
        assert [type(e) for _, e in refused.value.failed] == [qr.MessageLockLost]
        await client.complete_message(second)

    async def test_a_cancelled_receive_takes_nothing(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        require(client, "release")
        waiting = asyncio.ensure_future(client.receive_message(queue, timeout=60))
        await asyncio.sleep(0.2)  # parked in its wait
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await client.send_message(queue, qr.Message(b"after"))
        [message] = await assert_holds(client, contract_target, queue, [b"after"])
        assert message.delivery_count == 1

    async def test_a_cancelled_accept_holds_no_session(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        require(client, "release")
        waiting = asyncio.ensure_future(client.accept_session(session_queue, timeout=60))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await client.send_message(session_queue, qr.Message(b"m", session_id="s"))
        session = await second_client.accept_session(
            session_queue, timeout=contract_target.receive_timeout
        )
        assert session is not None and session.session_id == "s"
        async with session:
            [message] = await session_receive_exactly(session, contract_target, 1)
            assert message.delivery_count == 1
            await session.complete_message(message)
