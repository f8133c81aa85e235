"""Scheduled messages (``scheduled_messages``): not delivered, nor their session offered,
before their time; ``UnsupportedOperation`` where the adapter cannot schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    accept_next,
    assert_holds,
    receive_one,
    session_receive_one,
)

__all__ = ["ScheduledMessagesContract"]


def _delay(target: ContractTarget) -> float:
    return target.short_lock.total_seconds()


def _in(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


class ScheduledMessagesContract(ContractFixtures):
    async def test_a_scheduled_message_waits_for_its_time(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        delay = _delay(contract_target)
        later = qr.Message(b"later", scheduled_enqueue_time=_in(delay))
        if "scheduled_messages" not in client.capabilities:
            with pytest.raises(qr.UnsupportedOperation):
                await client.send_message(queue, later)
            await assert_holds(client, contract_target, queue, [])
            return
        await client.send_messages(queue, [later, qr.Message(b"now")])
        got = await receive_one(client, contract_target, queue)
        assert got.body == b"now"
        await client.complete_message(got)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None

        await contract_target.advance(delay + 1)
        got = await receive_one(client, contract_target, queue)
        assert (got.body, got.message_id, got.delivery_count) == (b"later", later.message_id, 1)
        await client.complete_message(got)

    async def test_a_time_in_the_past_means_now(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        if "scheduled_messages" not in client.capabilities:
            pytest.skip("the adapter does not support 'scheduled_messages'")
        await client.send_message(queue, qr.Message(b"past", scheduled_enqueue_time=_in(-60)))
        got = await receive_one(client, contract_target, queue)
        assert got.body == b"past"
        await client.complete_message(got)

    async def test_a_session_with_only_scheduled_messages_is_not_offered(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "scheduled_messages" not in client.capabilities:
            pytest.skip("the adapter does not support 'scheduled_messages'")
        delay = _delay(contract_target)
        await client.send_message(
            session_queue,
            qr.Message(b"later", session_id="s", scheduled_enqueue_time=_in(delay)),
        )
        assert (
            await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
            is None
        )
        async with await accept(client, session_queue, "s") as session:
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None

        await contract_target.advance(delay + 1)
        async with await accept_next(client, contract_target, session_queue) as session:
            assert session.session_id == "s"
            got = await session_receive_one(session, contract_target)
            assert got.body == b"later"
            await session.complete_message(got)
