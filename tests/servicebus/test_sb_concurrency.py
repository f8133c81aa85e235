"""One client, and one session, used by many tasks at once, over AMQP against our emulator.

The async SDK's handlers fail under concurrent use (azure-sdk-for-python 36334, 35618:
``'NoneType' object has no attribute 'create_sender_link'``; concurrent lock renewals on one
receiver reuse a delivery id and lose the connection): none of that may reach a caller.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

import queue_runtime as qr

pytestmark = pytest.mark.asyncio


async def receive_all(client: Any, queue: Any, count: int) -> list[qr.ReceivedMessage]:
    got: list[qr.ReceivedMessage] = []
    while len(got) < count:
        batch = await client.receive_messages(queue, max_messages=count - len(got), timeout=5)
        assert batch, f"{count - len(got)} of {count} messages went missing"
        got.extend(batch)
    return got


async def test_40_concurrent_completes_and_abandons(client: Any, queue: qr.QueueName) -> None:
    await client.send_messages(queue, [qr.Message(b"%d" % i) for i in range(40)])
    got = await receive_all(client, queue, 40)
    settle = [client.complete_message if i % 2 else client.abandon_message for i in range(40)]
    await asyncio.gather(*(s(m) for s, m in zip(settle, got, strict=True)))
    back = await receive_all(client, queue, 20)
    assert {m.message_id for m in back} == {m.message_id for m in got[::2]}
    assert {m.delivery_count for m in back} == {2}
    await asyncio.gather(*(client.complete_message(m) for m in back))
    assert await client.receive_message(queue, timeout=0.5) is None


async def test_concurrent_renewals_next_to_settlements(client: Any, queue: qr.QueueName) -> None:
    await client.send_messages(queue, [qr.Message(b"%d" % i) for i in range(40)])
    got = await receive_all(client, queue, 40)
    before = {m.message_id: m.locked_until for m in got}
    renewed = await asyncio.gather(*(client.renew_message_lock(m) for m in got))
    for until, message in zip(renewed, got, strict=True):
        assert isinstance(until, datetime) and until >= before[message.message_id]
    # renew half while the other half is completed, all at once
    mixed = [
        client.renew_message_lock(m) if i % 2 else client.complete_message(m)
        for i, m in enumerate(got)
    ]
    await asyncio.gather(*mixed)
    await asyncio.gather(*(client.complete_message(m) for m in got[1::2]))
    assert await client.receive_message(queue, timeout=0.5) is None


async def test_concurrent_receives_from_one_queue_share_out_the_messages(
    client: Any, queue: qr.QueueName
) -> None:
    await client.send_messages(queue, [qr.Message(b"%d" % i) for i in range(60)])

    async def consume() -> list[qr.ReceivedMessage]:
        mine: list[qr.ReceivedMessage] = []
        while batch := await client.receive_messages(queue, max_messages=7, timeout=1):
            mine.extend(batch)
            await asyncio.gather(*(client.complete_message(m) for m in batch))
        return mine

    consumed = await asyncio.gather(*(consume() for _ in range(6)))
    ids = [m.message_id for mine in consumed for m in mine]
    assert len(ids) == len(set(ids)) == 60


async def test_a_renewal_does_not_wait_out_a_receive_on_the_same_link(
    client: Any, queue: qr.QueueName
) -> None:
    """The only receiver is lent to a long receive while its delivery must be renewed: the
    renewal goes between two slices of the receive, not after it."""
    await client.send_message(queue, qr.Message(b"x"))
    got = await client.receive_message(queue, timeout=5)
    assert got is not None
    waiting = asyncio.ensure_future(client.receive_messages(queue, timeout=30))
    await asyncio.sleep(0.2)
    await client.renew_message_lock(got)
    await client.complete_message(got)
    assert not waiting.done()  # still waiting, with its 30 s
    await client.send_message(queue, qr.Message(b"late"))
    [late] = await waiting
    assert late.body == b"late"
    await client.complete_message(late)


async def test_concurrent_accepts_of_sessions(client: Any, session_queue: qr.QueueName) -> None:
    sessions = [f"s{i}" for i in range(5)]
    await client.send_messages(session_queue, [qr.Message(b"x", session_id=s) for s in sessions])
    # named, all at once
    held = await asyncio.gather(*(client.accept_session(session_queue, s) for s in sessions))
    assert [h.session_id for h in held] == sessions
    await asyncio.gather(*(h.close() for h in held))
    # one session asked for by four tasks: one holds it, the others are told it is held
    outcomes = await asyncio.gather(
        *(client.accept_session(session_queue, "s0") for _ in range(4)), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, qr.SessionClient)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, qr.SessionLocked) for o in outcomes if o not in winners)
    await winners[0].close()
    # next available, five at once: five different sessions
    nexts = await asyncio.gather(
        *(client.accept_session(session_queue, timeout=5) for _ in range(5))
    )
    assert sorted(n.session_id for n in nexts) == sessions

    async def finish(session: Any) -> None:  # each within its 2-second lock
        [message] = await session.receive_messages(timeout=1)
        await session.complete_message(message)
        await session.close()

    await asyncio.gather(*(finish(n) for n in nexts))


async def test_one_session_used_by_two_tasks(client: Any, session_queue: qr.QueueName) -> None:
    wave = [qr.Message(b"%d" % i, session_id="shared") for i in range(20)]
    await client.send_messages(session_queue, wave)
    session = await client.accept_session(session_queue, "shared")
    done = asyncio.Event()

    async def consume() -> list[str]:
        order: list[str] = []
        while len(order) < 20:
            message = await session.receive_message(timeout=5)
            assert message is not None
            order.append(message.message_id)
            await session.complete_message(message)
        done.set()
        return order

    async def keep() -> int:
        calls = 0
        while not done.is_set():
            until = await session.renew_session_lock()
            state = await session.get_state()
            await session.set_state(b"%d" % calls)
            await session.peek_messages(max_messages=2)
            assert isinstance(until, datetime) and state in (None, b"%d" % (calls - 1))
            calls += 1
        return calls

    order, calls = await asyncio.gather(consume(), keep())
    assert order == [m.message_id for m in wave] and calls > 0
    assert await session.get_state() == b"%d" % (calls - 1)
    # and one receive waiting in one task while the other renews and closes the session
    waiting = asyncio.ensure_future(session.receive_messages(timeout=30))
    await asyncio.sleep(0.2)
    await session.renew_session_lock()
    await session.close()
    with pytest.raises(qr.SessionLockLost):
        await waiting
