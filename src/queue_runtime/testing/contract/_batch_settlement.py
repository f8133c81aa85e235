"""Batch settlement: ``complete_messages`` / ``abandon_messages`` on both ports.

A batch is checked whole before anything is settled; a partial failure raises
`BatchSettleError` naming what was settled and what was not.
"""

from __future__ import annotations

from typing import Any

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    assert_dead_letters,
    assert_holds,
    assert_sessions_hold,
    receive_exactly,
    session_receive_exactly,
)

__all__ = ["BatchSettlementContract"]


class BatchSettlementContract(ContractFixtures):
    async def test_complete_messages_removes_every_message(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"%d" % i) for i in range(12)])
        received = await receive_exactly(client, contract_target, queue, 12)
        await client.complete_messages(received)
        await client.complete_messages([])  # an empty batch is nothing to do
        await assert_holds(client, contract_target, queue, [])
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_abandon_messages_makes_them_available_again(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"a"), qr.Message(b"b")])
        received = await receive_exactly(client, contract_target, queue, 2)
        await client.abandon_messages(received)
        again = await assert_holds(client, contract_target, queue, [b"a", b"b"])
        assert [m.delivery_count for m in again] == [2, 2]

    async def test_a_partly_settled_batch_says_which_messages_were_not_settled(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"a"), qr.Message(b"b"), qr.Message(b"c")])
        received = await receive_exactly(client, contract_target, queue, 3)
        await client.complete_message(received[1])
        with pytest.raises(qr.BatchSettleError) as caught:
            await client.complete_messages(received)
        error = caught.value
        assert sorted(error.settled) == sorted([received[0].message_id, received[2].message_id])
        [(failed_id, failure)] = error.failed
        assert failed_id == received[1].message_id
        assert isinstance(failure, qr.MessageLockLost)
        assert not error.retryable
        await assert_holds(client, contract_target, queue, [])

    async def test_a_bad_item_means_nothing_of_the_batch_is_settled(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"a"), qr.Message(b"b")])
        received = await receive_exactly(client, contract_target, queue, 2)
        bad_batches: list[Any] = [
            [received[0], qr.Message(b"not received")],
            [received[0], None],
            iter(received),
            received[0],
        ]
        for batch in bad_batches:
            with pytest.raises(qr.ValidationError):
                await client.complete_messages(batch)
            with pytest.raises(qr.ValidationError):
                await client.abandon_messages(batch)
        # both are still locked by us: completing them works
        await client.complete_messages(received)
        await assert_holds(client, contract_target, queue, [])

    async def test_a_session_settles_its_messages_in_batches(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        bodies = [b"%d" % i for i in range(5)]
        await client.send_messages(session_queue, [qr.Message(b, session_id="s") for b in bodies])
        async with await accept(client, session_queue, "s") as session:
            received = await session_receive_exactly(session, contract_target, 5)
            await session.abandon_messages(received[2:])
            await session.complete_messages(received[:2])
            again = await session_receive_exactly(session, contract_target, 3)
            assert [m.body for m in again] == bodies[2:]
            await session.complete_messages(again)
        await assert_sessions_hold(client, contract_target, session_queue, {})
