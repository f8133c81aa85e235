"""Behaviour 1: what is sent comes back exactly as sent."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    accept_next,
    receive_exactly,
    receive_one,
    session_receive_one,
)

__all__ = ["RoundTripContract"]

#: Every byte value, NUL and invalid UTF-8 included.
NON_UTF8_BODY = bytes(range(256)) + b"\xff\xfe\x00\xc3\x28"

UNICODE_ATTRIBUTES = {
    "event": "opened",
    "ключ": "значение",
    "emoji-🎉": "🚀 ✓ 漢字",
    "with space": "line one\nline two",
    "empty-value": "",
    "k" * 256: "the longest key allowed",
}


class RoundTripContract(ContractFixtures):
    async def test_round_trip_keeps_body_attributes_and_ids(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        sent = qr.Message(
            NON_UTF8_BODY,
            attributes=dict(UNICODE_ATTRIBUTES),
            correlation_id="corr-42",
            message_id="contract-message-1",
        )
        message_id = await client.send_message(queue, sent)
        assert message_id == "contract-message-1"

        got = await receive_one(client, contract_target, queue)
        assert got.body == NON_UTF8_BODY
        assert dict(got.attributes) == UNICODE_ATTRIBUTES
        assert got.correlation_id == "corr-42"
        assert got.message_id == "contract-message-1"
        assert got.session_id is None
        assert got.delivery_count == 1
        assert isinstance(got.enqueued_at, datetime)
        assert got.enqueued_at.tzinfo is not None
        assert got.dead_letter_reason is None
        assert got.dead_letter_description is None
        await client.complete_message(got)

    async def test_round_trip_of_a_session_message(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        sent = qr.Message(
            b"\x00\x01session-body\xff",
            session_id="repo/pr-42",
            attributes={"event": "opened", "ünï": "cødé"},
            correlation_id="abc",
        )
        message_id = await client.send_message(session_queue, sent)
        assert message_id == sent.message_id

        async with await accept_next(client, contract_target, session_queue) as session:
            assert session.session_id == "repo/pr-42"
            got = await session_receive_one(session, contract_target)
            assert got.body == sent.body
            assert got.session_id == "repo/pr-42"
            assert dict(got.attributes) == {"event": "opened", "ünï": "cødé"}
            assert got.correlation_id == "abc"
            assert got.message_id == message_id
            assert got.delivery_count == 1
            await session.complete_message(got)

    async def test_message_id_is_generated_when_absent(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        first, second = qr.Message(b"one"), qr.Message(b"two")
        ids = [await client.send_message(queue, first), await client.send_message(queue, second)]
        assert all(ids) and ids[0] != ids[1]
        assert ids == [first.message_id, second.message_id]
        received = await receive_exactly(client, contract_target, queue, 2)
        assert {m.body: m.message_id for m in received} == {b"one": ids[0], b"two": ids[1]}
        for message in received:
            await client.complete_message(message)

    async def test_send_messages_returns_ids_in_order(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        messages = [qr.Message(f"m{i}".encode(), attributes={"i": str(i)}) for i in range(5)]
        ids = await client.send_messages(queue, messages)
        assert ids == [m.message_id for m in messages]
        received = await receive_exactly(client, contract_target, queue, 5)
        assert {m.message_id: (m.body, dict(m.attributes)) for m in received} == {
            m.message_id: (m.body, dict(m.attributes)) for m in messages
        }
        for message in received:
            await client.complete_message(message)

    async def test_many_unicode_attributes_round_trip(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        # more attributes than some providers take natively (SQS: 10): adapters must pack them
        attributes = {f"属性-{i}-ключ": f"value {i} ✓ " * (i + 1) for i in range(25)}
        await client.send_message(queue, qr.Message(b"x", attributes=attributes))
        got = await receive_one(client, contract_target, queue)
        assert dict(got.attributes) == attributes
        await client.complete_message(got)

    async def test_session_ids_may_be_any_printable_characters(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        session_ids = ["a", "tenant 1/ordre-é ✓", "x" * 128, "repo/pr-42#comment:7"]
        for session_id in session_ids:
            await client.send_message(
                session_queue, qr.Message(session_id.encode(), session_id=session_id)
            )
        for session_id in session_ids:
            async with await accept(client, session_queue, session_id) as session:
                assert session.session_id == session_id
                got = await session_receive_one(session, contract_target)
                assert got.session_id == session_id
                assert got.body == session_id.encode()
                await session.complete_message(got)

    async def test_timeouts_accept_seconds_and_timedelta(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        assert await client.receive_message(queue, timeout=timedelta(0)) is None
        assert await client.receive_messages(queue, timeout=timedelta(seconds=0)) == []
        await client.send_message(queue, qr.Message(b"td"))
        got = await client.receive_message(
            queue, timeout=timedelta(seconds=contract_target.receive_timeout)
        )
        assert got is not None and got.body == b"td"
        await client.complete_message(got)

    async def test_largest_message_is_accepted(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        size = client.capabilities.max_message_size
        body = bytes(i % 251 for i in range(size))
        await client.send_message(queue, qr.Message(body))
        got = await receive_one(client, contract_target, queue)
        assert got.body == body
        await client.complete_message(got)

    async def test_capabilities_describe_the_adapter(self, client: qr.QueueClient) -> None:
        capabilities = client.capabilities
        assert isinstance(capabilities, qr.Capabilities)
        assert isinstance(capabilities.max_message_size, int)
        assert capabilities.max_message_size > 0
        for flag in dataclasses.fields(capabilities):
            value = getattr(capabilities, flag.name)
            if isinstance(value, bool):
                assert (flag.name in capabilities) is value
                assert (flag.name in set(capabilities)) is value
        assert "no-such-capability" not in capabilities
