"""Behaviour 10: session state round-trips where ``capabilities`` says it is supported.

Also the clarification that a session holding only state is not offered as available.
"""

from __future__ import annotations

from typing import Any

import pytest

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import ContractFixtures, accept, session_receive_one

__all__ = ["SessionStateContract"]


class SessionStateContract(ContractFixtures):
    async def test_session_state_round_trips(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "session_state" not in client.capabilities:
            async with await accept(client, session_queue, "s") as session:
                with pytest.raises(qr.UnsupportedOperation):
                    await session.get_state()
                with pytest.raises(qr.UnsupportedOperation):
                    await session.set_state(b"x")
            return
        async with await accept(client, session_queue, "s") as session:
            assert await session.get_state() is None
            await session.set_state(b"cursor=7")
            assert await session.get_state() == b"cursor=7"
            await session.set_state(b"\x00\xff\xfe binary \xc3\x28")
        # another holder (another process) sees it
        async with await accept(second_client, session_queue, "s") as session:
            assert await session.get_state() == b"\x00\xff\xfe binary \xc3\x28"
            await session.set_state(None)
            assert await session.get_state() is None
        async with await accept(client, session_queue, "s") as session:
            assert await session.get_state() is None

    async def test_session_state_is_per_session(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "session_state" not in client.capabilities:
            pytest.skip("the adapter does not support 'session_state'")
        async with await accept(client, session_queue, "a") as a:
            await a.set_state(b"state-a")
        async with await accept(client, session_queue, "b") as b:
            assert await b.get_state() is None
            await b.set_state(b"state-b")
        async with await accept(client, session_queue, "a") as a:
            assert await a.get_state() == b"state-a"

    async def test_state_outlives_messages_but_is_not_offered_as_available(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "session_state" not in client.capabilities:
            pytest.skip("the adapter does not support 'session_state'")
        await client.send_message(session_queue, qr.Message(b"only", session_id="s"))
        async with await accept(client, session_queue, "s") as session:
            got = await session_receive_one(session, contract_target)
            await session.set_state(b"after-only")
            await session.complete_message(got)
        # only state left: next-available must not offer the session
        assert (
            await client.accept_session(session_queue, timeout=contract_target.quiet_timeout)
            is None
        )
        async with await accept(client, session_queue, "s") as session:
            assert await session.get_state() == b"after-only"
            assert await session.receive_message(timeout=contract_target.quiet_timeout) is None

    async def test_session_state_must_be_bytes(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        if "session_state" not in client.capabilities:
            pytest.skip("the adapter does not support 'session_state'")
        async with await accept(client, session_queue, "s") as session:
            await session.set_state(b"good")
            not_bytes: Any = "text"
            with pytest.raises(qr.ValidationError):
                await session.set_state(not_bytes)
            assert await session.get_state() == b"good"
