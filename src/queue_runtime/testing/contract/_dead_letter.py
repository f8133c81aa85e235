"""Behaviour 7: dead-lettering, explicit and by max delivery count; nothing lost or doubled."""

from __future__ import annotations

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    assert_dead_letters,
    assert_holds,
    receive_exactly,
    receive_one,
    session_receive_one,
)

__all__ = ["DeadLetterContract"]

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"


class DeadLetterContract(ContractFixtures):
    async def test_dead_letter_message_moves_it_with_reason_and_description(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        sent = qr.Message(
            b"\xffpoison\x00",
            attributes={"event": "opened", "ключ": "✓"},
            correlation_id="corr-1",
        )
        await client.send_message(queue, sent)
        got = await receive_one(client, contract_target, queue)
        await client.dead_letter_message(got, reason="bad-payload", description="not JSON ✗")
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None

        dlq = queue.dead_letter
        assert isinstance(dlq, qr.QueueName)
        dead = await receive_one(client, contract_target, dlq)
        assert dead.body == sent.body
        assert dict(dead.attributes) == {"event": "opened", "ключ": "✓"}
        assert dead.message_id == sent.message_id
        assert dead.correlation_id == "corr-1"
        assert dead.session_id is None
        assert dead.dead_letter_reason == "bad-payload"
        assert dead.dead_letter_description == "not JSON ✗"
        await client.complete_message(dead)
        assert await client.receive_message(dlq, timeout=contract_target.quiet_timeout) is None

    async def test_a_dead_lettered_session_message_keeps_its_session_id(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        sent = qr.Message(b"poison", session_id="repo/pr-42", attributes={"k": "v"})
        await client.send_message(session_queue, sent)
        async with await accept(client, session_queue, "repo/pr-42") as session:
            got = await session_receive_one(session, contract_target)
            await session.dead_letter_message(got, reason="bad", description="why")
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None

        # the DLQ of a session queue needs no session
        dead = await receive_one(client, contract_target, session_queue.dead_letter)
        assert dead.session_id == "repo/pr-42"
        assert (dead.body, dead.message_id, dict(dead.attributes)) == (
            b"poison",
            sent.message_id,
            {"k": "v"},
        )
        assert (dead.dead_letter_reason, dead.dead_letter_description) == ("bad", "why")
        await client.complete_message(dead)
        assert (
            await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
            is None
        )

    async def test_max_delivery_count_moves_an_abandoned_message_to_the_dlq(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock(max_delivery_count=2)
        sent = qr.Message(b"flaky", attributes={"a": "b"})
        await client.send_message(queue, sent)
        for expected_count in (1, 2):
            got = await receive_one(client, contract_target, queue)
            assert got.delivery_count == expected_count
            await client.abandon_message(got)
        # delivered twice: never again, even after any lock would have lapsed
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        await contract_target.advance(contract_target.short_lock.total_seconds() + 1)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None

        [dead] = await assert_dead_letters(client, contract_target, queue, [b"flaky"])
        assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED
        assert (dead.message_id, dict(dead.attributes)) == (sent.message_id, {"a": "b"})

    async def test_max_delivery_count_applies_to_lock_expiry_too(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create_short_lock(max_delivery_count=2)
        await client.send_message(queue, qr.Message(b"slow"))
        for expected_count in (1, 2):
            got = await receive_one(client, contract_target, queue)
            assert got.delivery_count == expected_count
            await contract_target.advance(contract_target.short_lock.total_seconds() + 1)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        [dead] = await assert_dead_letters(client, contract_target, queue, [b"slow"])
        assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED

    async def test_max_delivery_count_in_a_session(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create(requires_session=True, max_delivery_count=2)
        await client.send_messages(
            queue, [qr.Message(b"flaky", session_id="s"), qr.Message(b"next", session_id="s")]
        )
        async with await accept(client, queue, "s") as session:
            for expected_count in (1, 2):
                got = await session_receive_one(session, contract_target)
                assert (got.body, got.delivery_count) == (b"flaky", expected_count)
                await session.abandon_message(got)
            # the spent message is skipped; the session goes on with the next one
            nxt = await session_receive_one(session, contract_target)
            assert (nxt.body, nxt.delivery_count) == (b"next", 1)
            await session.complete_message(nxt)
        assert await client.accept_session(queue, timeout=contract_target.quiet_timeout) is None
        [dead] = await assert_dead_letters(client, contract_target, queue, [b"flaky"])
        assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED
        assert dead.session_id == "s"

    async def test_max_delivery_count_applies_to_session_release_and_expiry(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queues: QueueFactory,
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True, max_delivery_count=2)
        await client.send_message(queue, qr.Message(b"unlucky", session_id="s"))
        # first delivery: the session is closed unsettled
        async with await accept(client, queue, "s") as session:
            got = await session_receive_one(session, contract_target)
            assert got.delivery_count == 1
        # second delivery: the session lock lapses
        session = await accept(second_client, queue, "s")
        got = await session_receive_one(session, contract_target)
        assert got.delivery_count == 2
        await contract_target.advance(contract_target.short_lock.total_seconds() + 1)
        await session.close()

        assert await client.accept_session(queue, timeout=contract_target.quiet_timeout) is None
        [dead] = await assert_dead_letters(client, contract_target, queue, [b"unlucky"])
        assert (dead.dead_letter_reason, dead.session_id) == (MAX_DELIVERY_COUNT_EXCEEDED, "s")

    async def test_dead_lettering_neither_loses_nor_duplicates(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        bodies = [f"m{i}".encode() for i in range(6)]
        await client.send_messages(queue, [qr.Message(b) for b in bodies])
        received = await receive_exactly(client, contract_target, queue, 6)
        doomed = {b"m1", b"m4"}
        for message in received:
            if message.body in doomed:
                await client.dead_letter_message(message, reason="doomed")
            else:
                await client.complete_message(message)
        dead = await assert_dead_letters(client, contract_target, queue, sorted(doomed))
        assert {m.dead_letter_reason for m in dead} == {"doomed"}
        await assert_holds(client, contract_target, queue, [])

    async def test_dead_lettering_an_already_settled_message_raises_message_lock_lost(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(b"once"))
        got = await receive_one(client, contract_target, queue)
        await client.dead_letter_message(got, reason="first")
        with pytest.raises(qr.MessageLockLost):
            await client.dead_letter_message(got, reason="second")
        [dead] = await assert_dead_letters(client, contract_target, queue, [b"once"])
        assert dead.dead_letter_reason == "first"

    async def test_dead_letter_queue_messages_can_be_abandoned_and_read_again(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(b"inspect me"))
        got = await receive_one(client, contract_target, queue)
        await client.dead_letter_message(got, reason="r")
        dead = await receive_one(client, contract_target, queue.dead_letter)
        await client.abandon_message(dead)
        again = await receive_one(client, contract_target, queue.dead_letter)
        assert (again.message_id, again.dead_letter_reason) == (dead.message_id, "r")
        await client.complete_message(again)
        await assert_dead_letters(client, contract_target, queue, [])
