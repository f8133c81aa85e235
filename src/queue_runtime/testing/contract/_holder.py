"""Holder-only settlement: a session's messages are settled only through the `SessionClient`
that received them; the plain client refuses them with `ValidationError` and changes nothing."""

from __future__ import annotations

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    assert_dead_letters,
    assert_sessions_hold,
    session_receive_one,
)

__all__ = ["HolderOnlySettlementContract"]


class HolderOnlySettlementContract(ContractFixtures):
    async def test_the_plain_client_cannot_settle_a_session_message(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue, [qr.Message(b"1", session_id="s"), qr.Message(b"2", session_id="s")]
        )
        async with await accept(client, session_queue, "s") as session:
            got = await session_receive_one(session, contract_target)
            for other in (client, second_client):
                with pytest.raises(qr.ValidationError):
                    await other.complete_message(got)
                with pytest.raises(qr.ValidationError):
                    await other.abandon_message(got)
                with pytest.raises(qr.ValidationError):
                    await other.dead_letter_message(got, reason="not mine")
                with pytest.raises(qr.ValidationError):
                    await other.complete_messages([got])
            # nothing changed: the holder still settles it, and the order holds
            await session.complete_message(got)
            nxt = await session_receive_one(session, contract_target)
            assert (nxt.body, nxt.delivery_count) == (b"2", 1)
            await session.abandon_message(nxt)
        await assert_sessions_hold(client, contract_target, session_queue, {"s": [b"2"]})
        await assert_dead_letters(client, contract_target, session_queue, [])

    async def test_a_session_message_lock_is_renewed_through_its_session(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(b"1", session_id="s"))
        async with await accept(client, session_queue, "s") as session:
            got = await session_receive_one(session, contract_target)
            with pytest.raises(qr.ValidationError):
                await client.renew_message_lock(got)
            await session.complete_message(got)
