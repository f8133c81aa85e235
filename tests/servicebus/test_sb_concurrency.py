"""One client, and one session, used by many tasks at once, over AMQP against our emulator.

The async SDK's handlers fail under concurrent use (azure-sdk-for-python 36334, 35618:
``'NoneType' object has no attribute 'create_sender_link'``; concurrent lock renewals on one
receiver reuse a delivery id and lose the connection): none of that may reach a caller.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest
import pytest_asyncio

import queue_runtime as qr

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def queue(client: Any, new_name: Callable[[], qr.QueueName]) -> AsyncIterator[qr.QueueName]:
    """A queue whose locks outlast a loaded machine's slowest test step (30 s)."""
    name = new_name()
    await client.create_queue(name, lock_duration=30)
    yield name
    await client.delete_queue(name)


@pytest_asyncio.fixture
async def session_queue(
    client: Any, new_name: Callable[[], qr.QueueName]
) -> AsyncIterator[qr.QueueName]:
    name = new_name()
    await client.create_queue(name, requires_session=True, lock_duration=30)
    yield name
    await client.delete_queue(name)


async def receive_all(client: Any, queue: Any, count: int) -> list[qr.ReceivedMessage]:
    got: list[qr.ReceivedMessage] = []
    while len(got) < count:
        batch = await client.receive_messages(queue, max_messages=count - len(got), timeout=5)
        assert batch, f"{count - len(got)} of {count} messages went missing"
        got.extend(batch)
    return got


async def test_40_concurrent_sends_through_one_client_arrive_once(
    client: Any, queue: qr.QueueName, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="queue_runtime.adapters.servicebus")
    messages = [qr.Message(b"m%d" % i) for i in range(40)]
    ids = await asyncio.gather(*(client.send_message(queue, m) for m in messages))
    assert ids == [m.message_id for m in messages]
    got = await receive_all(client, queue, 40)
    assert Counter(m.message_id for m in got) == Counter(ids)  # each once
    assert await client.receive_message(queue, timeout=0.5) is None
    # the sends that arrived while one was in flight went out together
    shared = [re.search(r"(\d+) sends\)", r.getMessage()) for r in caplog.records]
    assert max(int(found[1]) for found in shared if found) > 1
    await client.complete_messages(got)


async def test_each_task_s_sends_keep_their_order(client: Any, queue: qr.QueueName) -> None:
    async def one_task(task: int) -> list[str]:
        sent: list[str] = []
        for round_ in range(6):
            if round_ % 2:
                wave = [qr.Message(b"%d-%d-%d" % (task, round_, i)) for i in range(3)]
                sent += await client.send_messages(queue, wave)
            else:
                sent.append(await client.send_message(queue, qr.Message(b"%d" % task)))
        return sent

    per_task = await asyncio.gather(*(one_task(t) for t in range(8)))
    total = sum(len(ids) for ids in per_task)
    got = await receive_all(client, queue, total)
    sequence = {m.message_id: m.sequence_number for m in got}
    assert len(sequence) == total
    for ids in per_task:
        numbers = [sequence[i] for i in ids]
        assert numbers == sorted(numbers)
    await client.complete_messages(got)


async def test_concurrent_send_messages_each_get_their_own_validation_error(
    client: Any, queue: qr.QueueName
) -> None:
    limit = client.capabilities.max_message_size
    too_big = {f"{i:04x}": "" for i in range(limit // 5)}  # fits our rule, not the wire
    good = [[qr.Message(b"g%d-%d" % (t, i)) for i in range(3)] for t in range(5)]
    bad = [qr.Message(b"ok"), qr.Message(b"x", attributes=too_big)]
    outcomes = await asyncio.gather(
        *(client.send_messages(queue, wave) for wave in good),
        client.send_messages(queue, bad),
        client.send_message(queue, qr.Message(b"y", attributes=too_big)),
        return_exceptions=True,
    )
    assert all(isinstance(o, list) for o in outcomes[:5]), outcomes
    assert all(isinstance(o, qr.ValidationError) for o in outcomes[5:]), outcomes
    got = await receive_all(client, queue, 15)
    assert sorted(m.message_id for m in got) == sorted(m.message_id for w in good for m in w)
    assert await client.receive_message(queue, timeout=0.5) is None  # nothing of the bad
    await client.complete_messages(got)


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

    async def finish(session: Any) -> None:
        [message] = await session.receive_messages(timeout=5)
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


async def test_concurrent_sends_go_on_while_the_link_is_recreated(
    make_client: Any, emulator: Any, proxy: Any, new_name: Any
) -> None:
    """Every connection is reset while 40 tasks send: each send succeeds or fails with a
    typed error saying its outcome is unknown, and the client sends on afterwards."""
    connection_string = emulator.connection_string.replace(f":{emulator.port}", f":{proxy.port}")
    assert connection_string != emulator.connection_string
    name = new_name()
    async with make_client(
        connection_string=connection_string, admin_endpoint=emulator.admin_endpoint
    ) as client:
        await client.create_queue(name)
        await client.send_message(name, qr.Message(b"warm"))  # the sender link is open

        async def send(i: int) -> str:
            if i == 20:
                proxy.cut()
            return await client.send_message(name, qr.Message(b"%d" % i))

        outcomes = await asyncio.gather(*(send(i) for i in range(40)), return_exceptions=True)
        failed = [o for o in outcomes if not isinstance(o, str)]
        assert all(
            isinstance(o, (qr.ConnectionError, qr.TimeoutError)) and o.outcome_unknown
            for o in failed
        ), failed
        after = await asyncio.gather(
            *(client.send_message(name, qr.Message(b"a")) for _ in range(10))
        )
        sent = {o for o in outcomes if isinstance(o, str)} | set(after)
        got = await receive_all(client, name, 1 + len(sent))  # at least those, and the warm one
        received = {m.message_id for m in got}
        assert sent <= received
        await client.complete_messages(got)
        await client.delete_queue(name)


async def test_requests_to_a_silent_service_end_at_their_bound(
    make_client: Any, emulator: Any, proxy: Any, new_name: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer: a send and a lock renewal end at their bound with an unknown outcome (the
    SDK alone would wait for ever, and so would every call queued behind them on the link);
    the send queued behind the first gets its own turn and bound; all goes on once the
    service answers again."""
    from queue_runtime.adapters.servicebus import _link

    monkeypatch.setattr(_link, "REQUEST_TIMEOUT", 2.0)
    connection_string = emulator.connection_string.replace(f":{emulator.port}", f":{proxy.port}")
    name = new_name()
    async with make_client(
        connection_string=connection_string, admin_endpoint=emulator.admin_endpoint
    ) as client:
        await client.create_queue(name, lock_duration=30)
        await client.send_message(name, qr.Message(b"held"))
        held = await client.receive_message(name, timeout=5)
        assert held is not None
        proxy.freeze()
        outcomes = await asyncio.gather(
            client.send_message(name, qr.Message(b"a")),
            client.send_message(name, qr.Message(b"b")),
            client.renew_message_lock(held),
            return_exceptions=True,
        )
        assert all(isinstance(o, qr.TimeoutError) and o.outcome_unknown for o in outcomes), outcomes
        proxy.thaw()
        await client.renew_message_lock(held)
        await client.complete_message(held)
        sent = await client.send_message(name, qr.Message(b"after"))
        got: list[qr.ReceivedMessage] = []  # after, and perhaps a and b
        while sent not in {m.message_id for m in got}:
            batch = await client.receive_messages(name, max_messages=10, timeout=5)
            assert batch, "the send after the thaw went missing"
            got.extend(batch)
        await client.complete_messages(got)
        await client.delete_queue(name)
