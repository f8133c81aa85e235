"""Behaviour 3: one holder per session; after close or expiry it resumes where it stopped."""

from __future__ import annotations

import asyncio

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    accept_next,
    require,
    session_complete_exactly,
    session_receive_one,
)

__all__ = ["SessionExclusivityContract"]

#: "At once": a refused accept must not wait for the lock to lapse.
AT_ONCE = 1.0


class SessionExclusivityContract(ContractFixtures):
    async def test_accepting_a_held_session_raises_session_locked(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"x", session_id="s"))
        async with await accept(client, session_queue, "s"):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(qr.SessionLocked) as caught:
                await client.accept_session(
                    session_queue, "s", timeout=contract_target.receive_timeout
                )
            assert loop.time() - started < AT_ONCE
            assert caught.value.retryable is True
            # an empty session is held just the same
            async with await accept(client, session_queue, "empty"):
                with pytest.raises(qr.SessionLocked):
                    await client.accept_session(session_queue, "empty")

    async def test_held_session_is_locked_for_another_client_at_once(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        require(client, "exclusive_sessions_across_processes")
        await client.send_message(session_queue, qr.Message(b"x", session_id="s"))
        async with await accept(client, session_queue, "s") as session:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(qr.SessionLocked):
                await second_client.accept_session(
                    session_queue, "s", timeout=contract_target.receive_timeout
                )
            assert loop.time() - started < AT_ONCE
            # the holder is unaffected
            got = await session_receive_one(session, contract_target)
            await session.complete_message(got)

    async def test_next_available_session_skips_held_sessions(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"a", session_id="a"))
        await client.send_message(session_queue, qr.Message(b"b", session_id="b"))
        async with await accept(client, session_queue, "a"):
            async with await accept_next(client, contract_target, session_queue) as other:
                assert other.session_id == "b"
                got = await session_receive_one(other, contract_target)
                assert got.body == b"b"
                await other.complete_message(got)
            # "b" is empty now and "a" is held: nothing to offer
            assert (
                await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
                is None
            )

    async def test_next_available_session_skips_sessions_held_by_another_client(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        require(client, "exclusive_sessions_across_processes")
        await client.send_message(session_queue, qr.Message(b"a", session_id="a"))
        await client.send_message(session_queue, qr.Message(b"b", session_id="b"))
        async with (
            await accept(client, session_queue, "a"),
            await accept_next(second_client, contract_target, session_queue) as other,
        ):
            assert other.session_id == "b"
            assert (
                await second_client.accept_session(
                    session_queue, timeout=contract_target.quiet_timeout
                )
                is None
            )

    async def test_closed_session_can_be_accepted_again_and_resumes(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(3)]
        )
        session = await accept(client, session_queue, "s")
        first = await session_receive_one(session, contract_target)
        await session.complete_message(first)
        await session_receive_one(session, contract_target)  # m1, left unsettled
        await session.close()
        await session.close()  # idempotent

        async with await accept(second_client, session_queue, "s") as again:
            rest = await session_complete_exactly(again, contract_target, 2)
            assert [(m.body, m.delivery_count) for m in rest] == [(b"m1", 2), (b"m2", 1)]

    async def test_session_can_be_accepted_again_after_lock_expiry(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        queues: QueueFactory,
    ) -> None:
        queue = await queues.create_short_lock(requires_session=True)
        await client.send_messages(
            queue, [qr.Message(f"m{i}".encode(), session_id="s") for i in range(2)]
        )
        stale = await accept(client, queue, "s")
        first = await session_receive_one(stale, contract_target)
        await stale.complete_message(first)
        await session_receive_one(stale, contract_target)  # m1, left unsettled
        await contract_target.advance(contract_target.short_lock.total_seconds() + 1)

        # next-available offers it again, to another client
        async with await accept_next(second_client, contract_target, queue) as again:
            assert again.session_id == "s"
            got = await session_receive_one(again, contract_target)
            assert (got.body, got.delivery_count) == (b"m1", 2)
            # the stale holder cannot interfere with the new one
            with pytest.raises(qr.SessionLockLost):
                await stale.receive_message(timeout=0)
            await again.complete_message(got)
        await stale.close()

    async def test_a_session_that_got_messages_while_held_is_offered_after_close(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        async with await accept(client, session_queue, "s"):
            await second_client.send_message(session_queue, qr.Message(b"x", session_id="s"))
            assert (
                await second_client.accept_session(
                    session_queue, timeout=contract_target.quiet_timeout
                )
                is None
            )
        async with await accept_next(second_client, contract_target, session_queue) as session:
            assert session.session_id == "s"
            got = await session_receive_one(session, contract_target)
            assert (got.body, got.delivery_count) == (b"x", 1)
            await session.complete_message(got)

    async def test_an_empty_session_can_be_accepted_by_id(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        async with await accept(client, session_queue, "nobody-here") as session:
            assert session.session_id == "nobody-here"
            assert session.locked_until.tzinfo is not None
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None
            # a message sent while it is held arrives in that session
            await client.send_message(session_queue, qr.Message(b"late", session_id="nobody-here"))
            got = await session_receive_one(session, contract_target)
            assert got.body == b"late"
            await session.complete_message(got)
