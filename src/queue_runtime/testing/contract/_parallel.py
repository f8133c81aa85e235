"""Behaviour 4: different sessions are processed concurrently; a stuck one blocks nobody."""

from __future__ import annotations

import asyncio

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import (
    ContractFixtures,
    accept,
    accept_next,
    session_complete_exactly,
    session_receive_one,
)

__all__ = ["ParallelSessionsContract"]


class ParallelSessionsContract(ContractFixtures):
    async def test_different_sessions_are_held_and_processed_at_once(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        session_ids = ["a", "b", "c"]
        for i in range(3):
            await client.send_messages(
                session_queue,
                [qr.Message(f"{sid}-{i}".encode(), session_id=sid) for sid in session_ids],
            )
        # three holders at once, each with an unsettled message in hand
        sessions = [
            await accept_next(client, contract_target, session_queue),
            await accept_next(second_client, contract_target, session_queue),
            await accept_next(client, contract_target, session_queue),
        ]
        try:
            assert sorted(s.session_id for s in sessions) == session_ids
            firsts = [await session_receive_one(s, contract_target) for s in sessions]
            assert [m.body for m in firsts] == [f"{s.session_id}-0".encode() for s in sessions]

            async def finish(session: qr.SessionClient, first: qr.ReceivedMessage) -> list[bytes]:
                await session.complete_message(first)
                rest = await session_complete_exactly(session, contract_target, 2)
                return [first.body, *(m.body for m in rest)]

            results = await asyncio.gather(
                *(finish(s, m) for s, m in zip(sessions, firsts, strict=True))
            )
            for session, bodies in zip(sessions, results, strict=True):
                assert bodies == [f"{session.session_id}-{i}".encode() for i in range(3)]
        finally:
            for session in sessions:
                await session.close()

    async def test_a_stuck_session_does_not_block_the_others(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        await client.send_messages(
            session_queue,
            [qr.Message(b"stuck-0", session_id="stuck"), qr.Message(b"stuck-1", session_id="stuck")]
            + [qr.Message(f"free-{i}".encode(), session_id="free") for i in range(5)],
        )
        async with await accept(client, session_queue, "stuck") as stuck:
            hung = await session_receive_one(stuck, contract_target)
            assert hung.body == b"stuck-0"  # never settled while the other session runs

            async with await accept_next(second_client, contract_target, session_queue) as free:
                assert free.session_id == "free"
                received = await session_complete_exactly(free, contract_target, 5)
                assert [m.body for m in received] == [f"free-{i}".encode() for i in range(5)]
            # and the stuck session is still where it was
            await stuck.complete_message(hung)
            last = await session_receive_one(stuck, contract_target)
            assert (last.body, last.delivery_count) == (b"stuck-1", 1)
            await stuck.complete_message(last)

    async def test_a_waiting_receive_in_one_session_does_not_hold_up_another(
        self,
        client: qr.QueueClient,
        second_client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        async with (
            await accept(client, session_queue, "idle") as idle,
            await accept(second_client, session_queue, "busy") as busy,
        ):
            waiting = asyncio.ensure_future(
                idle.receive_message(timeout=3 * contract_target.receive_timeout)
            )
            await asyncio.sleep(0)
            await client.send_message(session_queue, qr.Message(b"for-busy", session_id="busy"))
            got = await session_receive_one(busy, contract_target)
            assert got.body == b"for-busy"
            await busy.complete_message(got)
            assert not waiting.done(), "a message of another session woke the idle receiver"

            await client.send_message(session_queue, qr.Message(b"for-idle", session_id="idle"))
            late = await asyncio.wait_for(waiting, timeout=3 * contract_target.receive_timeout)
            assert late is not None and late.body == b"for-idle"
            await idle.complete_message(late)
