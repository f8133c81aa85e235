"""Client, queue and session lifecycles: create/delete, open/close, releasing sessions."""

from __future__ import annotations

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    new_queue_name,
    receive_one,
    session_receive_one,
)

__all__ = ["LifecycleContract"]


class LifecycleContract(ContractFixtures):
    async def test_create_queue_is_idempotent_for_equal_settings(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        queue = await queues.create(max_delivery_count=5)
        await client.send_message(queue, qr.Message(b"kept"))
        await client.create_queue(queue, max_delivery_count=5, lock_duration=30)
        got = await receive_one(client, contract_target, queue)
        assert got.body == b"kept"  # re-creating changed nothing
        await client.complete_message(got)
        with pytest.raises(qr.QueueAlreadyExists):
            await client.create_queue(queue, max_delivery_count=7)

    async def test_delete_queue_removes_it_and_its_messages(
        self, client: qr.QueueClient, queues: QueueFactory
    ) -> None:
        queue = await queues.create()
        await client.send_message(queue, qr.Message(b"doomed"))
        await client.delete_queue(queue)
        with pytest.raises(qr.QueueNotFound):
            await client.receive_message(queue, timeout=0)
        with pytest.raises(qr.QueueNotFound):
            await client.send_message(queue, qr.Message(b"x"))
        with pytest.raises(qr.QueueNotFound):
            await client.delete_queue(queue)

    async def test_a_closed_client_refuses_further_use(
        self, contract_target: ContractTarget
    ) -> None:
        other = contract_target.make_client()
        await other.open()
        await other.open()  # idempotent
        await other.aclose()
        await other.aclose()  # idempotent
        with pytest.raises(qr.ClientClosed):
            await other.send_message(new_queue_name(), qr.Message(b"x"))
        with pytest.raises(qr.ClientClosed):
            await other.receive_message(new_queue_name(), timeout=0)

    async def test_closing_a_client_releases_its_sessions(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"m0", session_id="s"))
        async with contract_target.make_client() as other:
            session = await accept(other, session_queue, "s")
            await session_receive_one(session, contract_target)  # left unsettled
        # the client's close released the session and its message
        async with await accept(client, session_queue, "s") as again:
            got = await session_receive_one(again, contract_target)
            assert (got.body, got.delivery_count) == (b"m0", 2)
            await again.complete_message(got)
        await session.close()  # harmless after its client closed

    async def test_leaving_async_with_releases_the_session(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"m0", session_id="s"))
        async with await accept(client, session_queue, "s") as session:
            assert session.session_id == "s"
            assert session.locked_until.tzinfo is not None
            await session_receive_one(session, contract_target)
        async with await accept(second_client, session_queue, "s") as again:
            got = await session_receive_one(again, contract_target)
            assert got.delivery_count == 2
            await again.complete_message(got)

    async def test_a_closed_session_refuses_further_use(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"m0", session_id="s"))
        session = await accept(client, session_queue, "s")
        held = await session_receive_one(session, contract_target)
        await session.close()
        await session.close()  # idempotent
        gone = (qr.SessionLockLost, qr.ClientClosed)
        with pytest.raises(gone):
            await session.receive_message(timeout=0)
        with pytest.raises(gone):
            await session.complete_message(held)
        async with await accept(client, session_queue, "s") as again:
            got = await session_receive_one(again, contract_target)
            assert (got.body, got.delivery_count) == (b"m0", 2)
            await again.complete_message(got)

    async def test_session_queues_are_supported_or_refused(
        self, client: qr.QueueClient, queues: QueueFactory
    ) -> None:
        if "sessions" in client.capabilities:
            queue = await queues.create(requires_session=True)
            async with await accept(client, queue, "s") as session:
                assert session.session_id == "s"
            return
        name = new_queue_name()
        with pytest.raises(qr.UnsupportedOperation):
            await client.create_queue(name, requires_session=True)
        plain = await queues.create()
        with pytest.raises(qr.UnsupportedOperation):
            await client.accept_session(plain, timeout=0)
