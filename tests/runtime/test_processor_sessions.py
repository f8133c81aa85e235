"""The processor on session queues (in-memory adapter): order, exclusivity, retries,
dead-lettering, and sessions handed on the moment they drain."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict

import pydantic
import pytest
from runtime_helpers import dead_letters, drained, eventually

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient


class PullRequestEvent(pydantic.BaseModel):
    action: str
    number: int


FAST_RETRY = qr.RetryPolicy(max_attempts=5, initial_delay=0.001, max_delay=0.01)


@pytest.mark.asyncio
async def test_thirty_sessions_with_transient_and_permanent_failures_settle_each_message_once_in_order(  # noqa: E501
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("orders", requires_session=True, max_delivery_count=10)
    sessions, per_session = 30, 30
    rng = random.Random(8)
    permanent = {(s, n) for s in range(sessions) for n in range(per_session) if rng.random() < 0.02}
    for n in range(per_session):  # interleaved across sessions, in order within each
        await client.send_messages(
            "orders",
            [
                qr.Message(json.dumps({"s": s, "n": n}).encode(), session_id=f"s{s}")
                for s in range(sessions)
            ],
        )
    succeeded: dict[str, list[int]] = defaultdict(list)
    active: dict[str, int] = defaultdict(int)
    overlaps = 0
    concurrent_sessions = 0
    flaky = random.Random(10)

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal overlaps, concurrent_sessions
        sid = message.session_id
        assert sid is not None
        active[sid] += 1
        overlaps = max(overlaps, active[sid])
        concurrent_sessions = max(concurrent_sessions, sum(1 for v in active.values() if v))
        try:
            await asyncio.sleep(0)  # let other handlers interleave
            event = json.loads(message.body)
            if (event["s"], event["n"]) in permanent:
                raise qr.PermanentError(f"order {event['s']}/{event['n']} is unknown")
            if flaky.random() < 0.10:
                raise ConnectionResetError("payment API reset the connection")
            succeeded[sid].append(event["n"])
        finally:
            active[sid] -= 1

    processor = qr.Processor(client, "orders", handle, max_concurrent_sessions=8, retry=FAST_RETRY)
    async with processor:
        await eventually(lambda: drained(client, "orders"))
    dead = await dead_letters(client, "orders")

    assert overlaps == 1, "two handlers of one session ran at once"
    assert concurrent_sessions <= 8
    dead_keys = {(json.loads(m.body)["s"], json.loads(m.body)["n"]) for m in dead}
    assert len(dead_keys) == len(dead), "a message was dead-lettered twice"
    done = [(int(sid[1:]), n) for sid, ns in succeeded.items() for n in ns]
    assert len(done) == len(set(done)), "a message succeeded twice"
    assert set(done) | dead_keys == {(s, n) for s in range(sessions) for n in range(per_session)}
    assert not set(done) & dead_keys
    for sid, ns in succeeded.items():
        assert ns == sorted(ns), f"session {sid} out of order"
    assert permanent <= dead_keys
    for message in dead:
        key = (json.loads(message.body)["s"], json.loads(message.body)["n"])
        if key in permanent:
            assert message.dead_letter_reason == "permanent-error"
            assert "is unknown" in (message.dead_letter_description or "")
        else:  # five transient failures in a row: rare, but then it says so
            assert message.dead_letter_reason == "max-attempts-exceeded"
            assert "ConnectionResetError" in (message.dead_letter_description or "")
    stats = client.statistics("orders")
    assert stats.completed == len(done)
    assert processor.counters.retries > 0
    assert processor.counters.completed == len(done)
    assert processor.counters.dead_lettered == len(dead)


@pytest.mark.asyncio
async def test_a_retried_message_runs_again_before_any_later_message_of_its_session(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_messages("q", [qr.Message(f"{n}".encode(), session_id="a") for n in range(5)])
    calls: list[tuple[str, int]] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        calls.append((message.body.decode(), message.delivery_count))
        if message.body == b"1" and message.delivery_count < 3:
            raise TimeoutError("slow dependency")

    async with qr.Processor(client, "q", handle, retry=FAST_RETRY):
        await eventually(lambda: drained(client, "q"))
    assert calls == [("0", 1), ("1", 1), ("1", 2), ("1", 3), ("2", 1), ("3", 1), ("4", 1)]


@pytest.mark.asyncio
async def test_attempts_count_across_redeliveries_so_a_crash_does_not_reset_them(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True, max_delivery_count=10)
    await client.send_message("q", qr.Message(b"x", session_id="a"))
    for _ in range(3):  # three deliveries that "crashed" before settling
        session = await client.accept_session("q", timeout=0)
        assert session is not None
        message = await session.receive_message(timeout=0)
        assert message is not None
        await session.abandon_message(message)
        await session.close()
    calls = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("still broken")

    async with qr.Processor(client, "q", handle, retry=FAST_RETRY):
        await eventually(lambda: drained(client, "q"))
    assert calls == 2  # attempts 4 and 5 of max_attempts=5
    (dead,) = await dead_letters(client, "q")
    assert dead.dead_letter_reason == "max-attempts-exceeded"
    assert dead.dead_letter_description == "after 5 attempts: RuntimeError: still broken"


@pytest.mark.asyncio
async def test_one_worker_moves_to_the_next_session_as_soon_as_one_drains(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True)
    for sid in ("a", "b", "c"):
        await client.send_messages("q", [qr.Message(b"m", session_id=sid) for _ in range(3)])
    order: list[str] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        assert message.session_id is not None
        order.append(message.session_id)

    started = asyncio.get_running_loop().time()
    processor = qr.Processor(client, "q", handle, max_concurrent_sessions=1, receive_timeout=10)
    async with processor:
        await eventually(lambda: drained(client, "q"))
        assert processor.health().sessions == ()  # a drained session is not held
        # no wait between sessions at all (a 10 s accept wait would show)
        assert asyncio.get_running_loop().time() - started < 5
        # the worker now waits in an accept that takes nothing: cutting it short is safe
        await processor.stop(timeout=0)
    assert len(order) == 9
    assert [order[i] for i in (0, 3, 6)] == sorted(set(order))  # one session at a time
    assert len(set(order[0:3])) == len(set(order[3:6])) == len(set(order[6:9])) == 1


@pytest.mark.asyncio
async def test_a_session_that_gets_new_messages_later_is_taken_again(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True)
    seen: list[bytes] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        seen.append(message.body)

    async with qr.Processor(client, "q", handle, max_concurrent_sessions=2, receive_timeout=0.2):
        await client.send_message("q", qr.Message(b"1", session_id="a"))
        await eventually(lambda: seen == [b"1"])
        await client.send_message("q", qr.Message(b"2", session_id="a"))
        await eventually(lambda: seen == [b"1", b"2"])


@pytest.mark.asyncio
async def test_typed_handler_gets_the_parsed_model_and_bad_payloads_are_dead_lettered(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_messages(
        "q",
        [
            qr.Message(b'{"action": "opened", "number": 42}', session_id="pr-42"),
            qr.Message(b'{"action": "closed"}', session_id="pr-42"),
            qr.Message(b"not json", session_id="pr-42"),
        ],
    )
    events: list[PullRequestEvent] = []

    async def handle(event: PullRequestEvent) -> None:
        events.append(event)

    async with qr.Processor(client, "q", handle):
        await eventually(lambda: drained(client, "q"))
    assert events == [PullRequestEvent(action="opened", number=42)]
    dead = await dead_letters(client, "q")
    assert [m.dead_letter_reason for m in dead] == ["invalid-payload", "invalid-payload"]
    assert "number: Field required" in (dead[0].dead_letter_description or "")
    assert "PullRequestEvent" in (dead[1].dead_letter_description or "")


@pytest.mark.asyncio
async def test_a_handler_whose_annotation_cannot_be_resolved_is_refused(
    client: InMemoryQueueClient,
) -> None:
    class Local(pydantic.BaseModel):
        x: int

    async def handle(event: Local) -> None: ...

    with pytest.raises(qr.ValidationError, match="cannot resolve"):
        qr.Processor(client, "q", handle)
    with pytest.raises(qr.ValidationError):
        qr.Processor(client, "q", "not a handler")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_lost_session_lock_costs_the_messages_received_ahead_no_delivery() -> None:
    clock = qr.ManualClock()
    async with InMemoryQueueClient(clock=clock, default_timeout=1) as client:
        await client.create_queue("q", requires_session=True, lock_duration=10)
        await client.send_messages("q", [qr.Message(b"%d" % n, session_id="s") for n in range(5)])
        first_started, go_on = asyncio.Event(), asyncio.Event()
        seen: list[tuple[bytes, int]] = []

        async def handle(message: qr.ReceivedMessage) -> None:
            seen.append((message.body, message.delivery_count))
            if len(seen) == 1:
                first_started.set()
                await go_on.wait()

        processor = qr.Processor(client, "q", handle, max_concurrent_sessions=1, lock_renewal=False)
        async with processor:
            await first_started.wait()  # the worker holds the session and 4 messages ahead
            clock.advance(11)  # the session lock lapses under the slow handler
            go_on.set()
            await eventually(lambda: client.statistics("q").completed == 5)
        assert processor.counters.locks_lost == 1
        assert processor.counters.released == 4
        # the first was handled again (its delivery counted); the rest only once, at delivery 1
        assert seen == [(b"0", 1), (b"0", 2), (b"1", 1), (b"2", 1), (b"3", 1), (b"4", 1)]
