"""Iteration: ``async for message in session`` and ``client.iter_messages(queue)``."""

from __future__ import annotations

import queue_runtime as qr

from .._target import ContractTarget
from ._fixtures import ContractFixtures, accept, assert_holds, assert_sessions_hold

__all__ = ["IterationContract"]


class IterationContract(ContractFixtures):
    async def test_iter_messages_yields_every_message_then_ends(
        self, client: qr.QueueClient, contract_target: ContractTarget, queue: qr.QueueName
    ) -> None:
        bodies = [b"%d" % i for i in range(4)]
        await client.send_messages(queue, [qr.Message(b) for b in bodies])
        seen = []
        async for message in client.iter_messages(queue, timeout=contract_target.receive_timeout):
            seen.append(message.body)
            await client.complete_message(message)
            if len(seen) == len(bodies):
                break
        assert sorted(seen) == sorted(bodies)
        # on an empty queue the iteration ends once the timeout passes
        rest = [m async for m in client.iter_messages(queue, timeout=contract_target.quiet_timeout)]
        assert rest == []
        await assert_holds(client, contract_target, queue, [])

    async def test_a_session_iterates_its_messages_in_order(
        self,
        client: qr.QueueClient,
        contract_target: ContractTarget,
        session_queue: qr.QueueName,
    ) -> None:
        bodies = [b"%d" % i for i in range(5)]
        await client.send_messages(session_queue, [qr.Message(b, session_id="s") for b in bodies])
        async with await accept(client, session_queue, "s") as session:
            seen = []
            async for message in session.iter_messages(timeout=contract_target.quiet_timeout):
                seen.append(message.body)
                await session.complete_message(message)
            assert seen == bodies
        await assert_sessions_hold(client, contract_target, session_queue, {})
