"""Behaviour 9: bad input gets a typed error and changes nothing.

Each test puts a known message in place, makes the bad calls, then checks that the queue (and
its dead-letter queue) hold exactly what they held before.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    QueueFactory,
    accept,
    assert_dead_letters,
    assert_holds,
    assert_sessions_hold,
    new_queue_name,
    receive_one,
    session_receive_one,
)

__all__ = ["BadInputContract"]

INVALID_QUEUE_NAMES = ["", " ", "has space", "-leading-hyphen", "a" * 300, "bad/name", "ünï"]
SENTINEL = b"sentinel"


def _bad(body: Any) -> qr.Message:
    """A message whose body is not bytes (the type checker would refuse it)."""
    return qr.Message(body)


class BadInputContract(ContractFixtures):
    async def test_invalid_queue_names_raise_validation_error(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        for name in INVALID_QUEUE_NAMES:
            with pytest.raises(qr.ValidationError):
                qr.QueueName(name)
            with pytest.raises(qr.ValidationError):
                await client.create_queue(name)
            with pytest.raises(qr.ValidationError):
                await client.send_message(name, qr.Message(b"x"))
            with pytest.raises(qr.ValidationError):
                await client.receive_message(name, timeout=0)
        await assert_holds(client, contract_target, queue, [SENTINEL])

    async def test_unknown_queue_raises_queue_not_found(
        self, client: qr.QueueClient, contract_target: ContractTarget
    ) -> None:
        unknown = new_queue_name()
        with pytest.raises(qr.QueueNotFound):
            await client.send_message(unknown, qr.Message(b"x"))
        with pytest.raises(qr.QueueNotFound):
            await client.send_messages(unknown, [qr.Message(b"x")])
        with pytest.raises(qr.QueueNotFound):
            await client.receive_message(unknown, timeout=0)
        with pytest.raises(qr.QueueNotFound):
            await client.receive_messages(unknown, timeout=0)
        with pytest.raises(qr.QueueNotFound):
            await client.receive_message(unknown.dead_letter, timeout=0)
        if "sessions" in client.capabilities:
            with pytest.raises(qr.QueueNotFound):
                await client.accept_session(unknown, timeout=0)
            with pytest.raises(qr.QueueNotFound):
                await client.accept_session(unknown, "s")
        with pytest.raises(qr.QueueNotFound):
            await client.delete_queue(unknown)
        # and none of that brought the queue into being
        with pytest.raises(qr.QueueNotFound):
            await client.send_message(unknown, qr.Message(b"x"))

    async def test_bad_bodies_raise_validation_error(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        max_size = client.capabilities.max_message_size
        for body in (b"", "text", 42, None):
            with pytest.raises(qr.ValidationError):
                await client.send_message(queue, _bad(body))
        with pytest.raises(qr.ValidationError):
            await client.send_message(queue, qr.Message(b"x" * (max_size + 1)))
        # attributes count toward the size limit
        with pytest.raises(qr.ValidationError):
            await client.send_message(
                queue, qr.Message(b"x" * (max_size - 10), attributes={"key": "v" * 100})
            )
        await assert_holds(client, contract_target, queue, [SENTINEL])
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_bad_attributes_raise_validation_error(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        bad_attributes: list[dict[Any, Any]] = [
            {"qr-reserved": "x"},
            {"qr-": "x"},
            {"": "empty key"},
            {"k" * 257: "key too long"},
            {"number": 7},
            {"none": None},
            {7: "non-str key"},
        ]
        for attributes in bad_attributes:
            with pytest.raises(qr.ValidationError):
                await client.send_message(queue, qr.Message(b"x", attributes=attributes))
        await assert_holds(client, contract_target, queue, [SENTINEL])

    async def test_a_bad_message_in_a_batch_means_none_is_sent(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        with pytest.raises(qr.ValidationError):
            await client.send_messages(queue, [qr.Message(b"good"), qr.Message(b"")])
        with pytest.raises(qr.ValidationError):
            await client.send_messages(
                queue, [qr.Message(b"good"), qr.Message(b"bad", attributes={"qr-x": "y"})]
            )
        await assert_holds(client, contract_target, queue, [SENTINEL])

    async def test_a_batch_that_is_not_a_sequence_is_refused_before_anything_is_sent(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        produced: list[bytes] = []

        def generate() -> Iterator[qr.Message]:
            for body in (b"g1", b"g2"):
                produced.append(body)
                yield qr.Message(body)

        batches: list[Any] = [generate(), iter([qr.Message(b"i")]), {qr.Message(b"set")}]
        batches += [b"bytes", "str", qr.Message(b"single"), None]
        for batch in batches:
            with pytest.raises(qr.ValidationError):
                await client.send_messages(queue, batch)
        assert produced == [], "the generator was consumed"
        await assert_holds(client, contract_target, queue, [])

    async def test_session_queue_needs_a_valid_session_id(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(SENTINEL, session_id="s"))
        with pytest.raises(qr.ValidationError):
            await client.send_message(session_queue, qr.Message(b"no session"))
        with pytest.raises(qr.ValidationError):
            await client.send_messages(
                session_queue,
                [qr.Message(b"good", session_id="s"), qr.Message(b"no session")],
            )
        for session_id in ("", "x" * 129, "line\nbreak", "tab\there"):
            with pytest.raises(qr.ValidationError):
                await client.send_message(session_queue, qr.Message(b"x", session_id=session_id))
            with pytest.raises(qr.ValidationError):
                await client.accept_session(session_queue, session_id)
        await assert_sessions_hold(client, contract_target, session_queue, {"s": [SENTINEL]})

    async def test_a_session_id_on_a_queue_without_sessions_is_refused(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        """Nothing there would keep the session's order: refused, never silently ignored."""
        with pytest.raises(qr.ValidationError):
            await client.send_message(queue, qr.Message(b"x", session_id="s"))
        with pytest.raises(qr.ValidationError):
            await client.send_messages(queue, [qr.Message(b"ok"), qr.Message(b"x", session_id="s")])
        await assert_holds(client, contract_target, queue, [])

    async def test_wrong_kind_of_queue_raises_validation_error(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        queue: qr.QueueName,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        await client.send_message(session_queue, qr.Message(SENTINEL, session_id="s"))
        with pytest.raises(qr.ValidationError):
            await client.receive_message(session_queue, timeout=0)
        with pytest.raises(qr.ValidationError):
            await client.receive_messages(session_queue, timeout=0)
        with pytest.raises(qr.ValidationError):
            await client.accept_session(queue, timeout=0)
        with pytest.raises(qr.ValidationError):
            await client.accept_session(queue, "s")
        # a dead-letter queue takes no sends
        with pytest.raises(qr.ValidationError):
            await client.send_message(queue.dead_letter, qr.Message(b"x"))
        with pytest.raises(qr.ValidationError):
            await client.send_message(session_queue.dead_letter, qr.Message(b"x", session_id="s"))
        await assert_holds(client, contract_target, queue, [SENTINEL])
        await assert_dead_letters(client, contract_target, queue, [])
        await assert_sessions_hold(client, contract_target, session_queue, {"s": [SENTINEL]})
        await assert_dead_letters(client, contract_target, session_queue, [])

    async def test_bad_max_messages_and_timeouts_raise_validation_error(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        for max_messages in (0, -1):
            with pytest.raises(qr.ValidationError):
                await client.receive_messages(queue, max_messages=max_messages, timeout=0)
        for timeout in (-1, -0.5, timedelta(seconds=-1), math.nan, math.inf, -math.inf):
            with pytest.raises(qr.ValidationError):
                await client.receive_message(queue, timeout=timeout)
            with pytest.raises(qr.ValidationError):
                await client.receive_messages(queue, timeout=timeout)
        # nothing was received (and so locked) by the failed calls
        [got] = await assert_holds(client, contract_target, queue, [SENTINEL])
        assert got.delivery_count == 1

    async def test_bad_session_arguments_raise_validation_error(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_message(session_queue, qr.Message(SENTINEL, session_id="s"))
        with pytest.raises(qr.ValidationError):
            await client.accept_session(session_queue, timeout=-1)
        with pytest.raises(qr.ValidationError):
            await client.accept_session(session_queue, "s", timeout=-1)
        async with await accept(client, session_queue, "s") as session:
            # the failed accepts above did not take the session
            for max_messages in (0, -1):
                with pytest.raises(qr.ValidationError):
                    await session.receive_messages(max_messages=max_messages, timeout=0)
            with pytest.raises(qr.ValidationError):
                await session.receive_message(timeout=-1)
            with pytest.raises(qr.ValidationError):
                await session.receive_messages(timeout=timedelta(seconds=-1))
            got = await session_receive_one(session, contract_target)
            assert (got.body, got.delivery_count) == (SENTINEL, 1)
            await session.abandon_message(got)
        await assert_sessions_hold(client, contract_target, session_queue, {"s": [SENTINEL]})

    async def test_settling_something_that_is_not_a_received_message(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_message(queue, qr.Message(SENTINEL))
        not_received: Any = qr.Message(SENTINEL)
        with pytest.raises(qr.ValidationError):
            await client.complete_message(not_received)
        with pytest.raises(qr.ValidationError):
            await client.abandon_message(not_received)
        with pytest.raises(qr.ValidationError):
            await client.dead_letter_message(not_received)
        await assert_holds(client, contract_target, queue, [SENTINEL])

    async def test_settling_twice_is_refused_and_changes_nothing(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        await client.send_messages(queue, [qr.Message(b"gone"), qr.Message(SENTINEL)])
        first = await receive_one(client, contract_target, queue)
        if first.body == SENTINEL:
            await client.abandon_message(first)
            first = await receive_one(client, contract_target, queue)
        assert first.body == b"gone"
        await client.complete_message(first)
        with pytest.raises(qr.MessageLockLost):
            await client.complete_message(first)
        with pytest.raises(qr.MessageLockLost):
            await client.dead_letter_message(first)
        await assert_holds(client, contract_target, queue, [SENTINEL])
        await assert_dead_letters(client, contract_target, queue, [])

    async def test_bad_queue_settings_raise_validation_error(
        self, client: qr.QueueClient, queues: QueueFactory
    ) -> None:
        bad_settings: list[dict[str, Any]] = [
            {"max_delivery_count": 0},
            {"max_delivery_count": -1},
            {"lock_duration": 0},
            {"lock_duration": timedelta(seconds=-5)},
            {"lock_duration": math.nan},
            {"lock_duration": math.inf},
            {"default_message_ttl": math.nan},
            {"default_message_ttl": math.inf},
            {"default_message_ttl": -math.inf},
            {"default_message_ttl": 0},
        ]
        for settings in bad_settings:
            name = new_queue_name()
            with pytest.raises(qr.ValidationError):
                await client.create_queue(name, **settings)
            with pytest.raises(qr.QueueNotFound):
                await client.send_message(name, qr.Message(b"x"))
        # a dead-letter queue is created with its queue, never by itself
        queue = await queues.create()
        with pytest.raises(qr.ValidationError):
            await client.create_queue(queue.dead_letter)
