"""Time to live (``message_ttl``): an expired message is never delivered; where the queue asks
for it, it goes to the DLQ. ``UnsupportedOperation`` where the adapter cannot expire."""

from __future__ import annotations

from datetime import timedelta

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    assert_dead_letters,
    assert_holds,
    receive_one,
)

__all__ = ["TimeToLiveContract"]


def _ttl(target: ContractTarget) -> timedelta:
    return target.short_lock


async def _queue_or_skip(
    queues: QueueFactory,
    *,
    default_message_ttl: timedelta | None = None,
    dead_letter_on_expiration: bool = False,
) -> qr.QueueName:
    try:
        return await queues.create(
            default_message_ttl=default_message_ttl,
            dead_letter_on_expiration=dead_letter_on_expiration,
        )
    except qr.UnsupportedOperation as exc:
        pytest.skip(f"the adapter cannot create this queue: {exc}")


class TimeToLiveContract(ContractFixtures):
    async def test_an_expired_message_is_never_delivered(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        ttl = _ttl(contract_target)
        short = qr.Message(b"short-lived", time_to_live=ttl)
        if "message_ttl" not in client.capabilities:
            with pytest.raises(qr.UnsupportedOperation):
                await client.send_message(queue, short)
            await assert_holds(client, contract_target, queue, [])
            return
        await client.send_messages(
            queue, [short, qr.Message(b"long-lived", time_to_live=100 * ttl), qr.Message(b"ever")]
        )
        await contract_target.advance(ttl.total_seconds() + 1)
        await assert_holds(client, contract_target, queue, [b"long-lived", b"ever"])
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_a_message_within_its_ttl_is_delivered(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        if "message_ttl" not in client.capabilities:
            pytest.skip("the adapter does not support 'message_ttl'")
        await client.send_message(
            queue, qr.Message(b"fresh", time_to_live=10 * _ttl(contract_target))
        )
        got = await receive_one(client, contract_target, queue)
        assert got.body == b"fresh"
        await client.complete_message(got)

    async def test_the_queue_default_ttl_applies(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        if "message_ttl" not in client.capabilities:
            pytest.skip("the adapter does not support 'message_ttl'")
        ttl = _ttl(contract_target)
        queue = await _queue_or_skip(queues, default_message_ttl=ttl)
        await client.send_messages(
            queue, [qr.Message(b"default"), qr.Message(b"own", time_to_live=100 * ttl)]
        )
        await contract_target.advance(ttl.total_seconds() + 1)
        await assert_holds(client, contract_target, queue, [b"own"])

    async def test_an_expired_message_is_dead_lettered_when_the_queue_asks(
        self, client: qr.QueueClient, contract_target: ContractTarget, queues: QueueFactory
    ) -> None:
        if "message_ttl" not in client.capabilities:
            pytest.skip("the adapter does not support 'message_ttl'")
        ttl = _ttl(contract_target)
        queue = await _queue_or_skip(queues, dead_letter_on_expiration=True)
        sent = qr.Message(b"expiring", time_to_live=ttl, attributes={"a": "1"})
        await client.send_message(queue, sent)
        await contract_target.advance(ttl.total_seconds() + 1)
        assert await client.receive_message(queue, timeout=contract_target.quiet_timeout) is None
        [dead] = await assert_dead_letters(client, contract_target, queue, [b"expiring"])
        assert dead.message_id == sent.message_id
        assert dead.dead_letter_reason

    async def test_a_session_with_only_expired_messages_is_not_offered(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "message_ttl" not in client.capabilities:
            pytest.skip("the adapter does not support 'message_ttl'")
        ttl = _ttl(contract_target)
        await client.send_message(
            session_queue, qr.Message(b"expiring", session_id="s", time_to_live=ttl)
        )
        await contract_target.advance(ttl.total_seconds() + 1)
        assert (
            await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
            is None
        )
