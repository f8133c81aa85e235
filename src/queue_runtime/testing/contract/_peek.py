"""Peek: look at a queue's messages in sequence order without locking or counting them.

Where the adapter has no ``peek`` capability, `peek_messages` must raise
`UnsupportedOperation` (never emulate it with a receive).
"""

from __future__ import annotations

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    assert_holds,
    receive_one,
    require,
    session_receive_one,
)

__all__ = ["PeekContract"]


class PeekContract(ContractFixtures):
    async def test_an_adapter_without_peek_says_so(
        self, client: qr.QueueClient, queue: qr.QueueName
    ) -> None:
        if "peek" in client.capabilities:
            pytest.skip("the adapter can peek")
        with pytest.raises(qr.UnsupportedOperation):
            await client.peek_messages(queue)

    async def test_peek_shows_messages_in_order_without_locking_them(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        require(client, "peek")
        sent = [qr.Message(b"%d" % i, attributes={"i": str(i)}) for i in range(5)]
        await client.send_messages(queue, sent)
        peeked = await client.peek_messages(queue, max_messages=10)
        assert [m.message_id for m in peeked] == [m.message_id for m in sent]
        assert [dict(m.attributes) for m in peeked] == [{"i": str(i)} for i in range(5)]
        assert all(m.delivery_count == 0 for m in peeked)
        numbers = [m.sequence_number or 0 for m in peeked]
        assert all(isinstance(m.sequence_number, int) for m in peeked)
        assert numbers == sorted(numbers) and len(set(numbers)) == 5
        # nothing was locked or counted: every message is delivered, for the first time
        received = await assert_holds(client, contract_target, queue, [m.body for m in sent])
        assert [m.delivery_count for m in received] == [1] * 5

    async def test_peek_pages_by_sequence_number(
        self, client: qr.QueueClient, queue: qr.QueueName
    ) -> None:
        require(client, "peek")
        await client.send_messages(queue, [qr.Message(b"%d" % i) for i in range(6)])
        first = await client.peek_messages(queue, max_messages=3)
        assert [m.body for m in first] == [b"0", b"1", b"2"]
        last = first[-1].sequence_number
        assert last is not None
        rest = await client.peek_messages(queue, max_messages=10, from_sequence_number=last + 1)
        assert [m.body for m in rest] == [b"3", b"4", b"5"]
        again = await client.peek_messages(queue, max_messages=1, from_sequence_number=last)
        assert [m.body for m in again] == [b"2"]  # from_sequence_number is inclusive
        with pytest.raises(qr.ValidationError):
            await client.peek_messages(queue, max_messages=0)

    async def test_a_peeked_message_cannot_be_settled(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        require(client, "peek")
        await client.send_message(queue, qr.Message(b"look"))
        [peeked] = await client.peek_messages(queue)
        for settle in (client.complete_message, client.abandon_message, client.renew_message_lock):
            with pytest.raises(qr.ValidationError):
                await settle(peeked)
        with pytest.raises(qr.ValidationError):
            await client.dead_letter_message(peeked)
        await assert_holds(client, contract_target, queue, [b"look"])

    async def test_peek_shows_dead_letters_with_their_reasons(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        require(client, "peek")
        await client.send_message(queue, qr.Message(b"bad", attributes={"k": "v"}))
        got = await receive_one(client, contract_target, queue)
        await client.dead_letter_message(got, reason="bad-payload", description="no JSON")
        [dead] = await client.peek_messages(queue.dead_letter)
        assert (dead.message_id, dead.body, dict(dead.attributes)) == (
            got.message_id,
            b"bad",
            {"k": "v"},
        )
        assert (dead.dead_letter_reason, dead.dead_letter_description) == (
            "bad-payload",
            "no JSON",
        )

    async def test_a_session_peeks_its_own_messages(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        require(client, "peek")
        await client.send_messages(
            session_queue,
            [
                qr.Message(b"a1", session_id="a"),
                qr.Message(b"b1", session_id="b"),
                qr.Message(b"a2", session_id="a"),
            ],
        )
        every = await client.peek_messages(session_queue)
        assert [m.body for m in every] == [b"a1", b"b1", b"a2"]
        async with await accept(client, session_queue, "a") as session:
            assert [m.body for m in await session.peek_messages()] == [b"a1", b"a2"]
            got = await session_receive_one(session, contract_target)
            assert (got.body, got.delivery_count) == (b"a1", 1)
            await session.complete_message(got)
            assert [m.body for m in await session.peek_messages()] == [b"a2"]
