"""The processor on queues without sessions (in-memory adapter): bounded concurrency and
prefetch, middleware, rate limit, timeouts, lanes, lock renewal and lost locks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from runtime_helpers import drained, eventually

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient
from queue_runtime.testing import ManualClock

FAST_RETRY = qr.RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.01)


@pytest.mark.asyncio
async def test_at_most_max_concurrency_handlers_and_held_messages(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_messages("q", [qr.Message(b"m") for _ in range(60)])
    running = peak = peak_locked = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal running, peak, peak_locked
        running += 1
        peak = max(peak, running)
        peak_locked = max(peak_locked, client.statistics("q").locked)
        await asyncio.sleep(0.002)
        running -= 1

    processor = qr.Processor(client, "q", handle, max_concurrency=4)
    async with processor:
        await eventually(lambda: drained(client, "q"))
    assert peak == 4
    # received ahead (as many again) only where what is not started goes back uncounted
    assert "release" in client.capabilities
    assert peak_locked <= 8
    assert processor.counters.completed == 60


@pytest.mark.asyncio
async def test_transient_failures_are_retried_then_dead_lettered_with_the_last_error(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"flaky"))
    await client.send_message("q", qr.Message(b"broken"))
    calls: list[tuple[bytes, int]] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        calls.append((message.body, message.delivery_count))
        if message.body == b"broken" or message.delivery_count == 1:
            raise OSError(f"upstream 503 on try {message.delivery_count}")

    async with qr.Processor(client, "q", handle, retry=FAST_RETRY):
        await eventually(lambda: drained(client, "q"))
    assert sorted(calls) == [
        (b"broken", 1),
        (b"broken", 2),
        (b"broken", 3),
        (b"flaky", 1),
        (b"flaky", 2),
    ]
    (dead,) = await client.receive_messages(qr.QueueName("q").dead_letter, timeout=0)
    assert dead.body == b"broken"
    assert dead.dead_letter_reason == "max-attempts-exceeded"
    assert dead.dead_letter_description == "after 3 attempts: OSError: upstream 503 on try 3"


@pytest.mark.asyncio
async def test_middleware_wraps_the_handler_in_order_and_sees_the_context(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m", attributes={"tenant": "acme"}))
    trail: list[str] = []

    def named(name: str) -> qr.Middleware:
        async def layer(
            context: qr.MessageContext, call_next: Callable[[qr.MessageContext], Awaitable[None]]
        ) -> None:
            trail.append(f"{name}>")
            context.items[name] = context.message.attributes["tenant"]
            await call_next(context)
            trail.append(f"<{name}")

        return layer

    async def handle(context: qr.MessageContext) -> None:
        trail.append(f"handler {context.items} attempt={context.attempt} q={context.queue}")

    async with qr.Processor(client, "q", handle, middleware=[named("outer"), named("inner")]):
        await eventually(lambda: drained(client, "q"))
    assert trail == [
        "outer>",
        "inner>",
        "handler {'outer': 'acme', 'inner': 'acme'} attempt=1 q=q",
        "<inner",
        "<outer",
    ]


@pytest.mark.asyncio
async def test_a_middleware_that_raises_permanent_error_dead_letters(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m"))

    async def refuse(context: qr.MessageContext, call_next: qr.runtime.Next) -> None:
        raise qr.PermanentError("tenant unknown")

    async def handle(message: qr.ReceivedMessage) -> None:
        raise AssertionError("not reached")

    async with qr.Processor(client, "q", handle, middleware=[refuse]):
        await eventually(lambda: drained(client, "q"))
    (dead,) = await client.receive_messages(qr.QueueName("q").dead_letter, timeout=0)
    assert (dead.dead_letter_reason, dead.dead_letter_description) == (
        "permanent-error",
        "PermanentError: tenant unknown",
    )


@pytest.mark.asyncio
async def test_rate_limit_spaces_handler_calls(client: InMemoryQueueClient) -> None:
    await client.create_queue("q")
    await client.send_messages("q", [qr.Message(b"m") for _ in range(6)])
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        starts.append(loop.time())

    async with qr.Processor(client, "q", handle, rate_limit=qr.RateLimit(rate=50, burst=2)):
        await eventually(lambda: drained(client, "q"))
    assert starts[-1] - starts[0] >= 4 / 50 * 0.9  # two at once, then one per 20 ms


@pytest.mark.asyncio
async def test_handler_timeout_fails_the_attempt_as_transient(client: InMemoryQueueClient) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m"))
    calls = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)

    processor = qr.Processor(client, "q", handle, handler_timeout=0.05, retry=FAST_RETRY)
    async with processor:
        await eventually(lambda: drained(client, "q"))
    assert calls == 2
    assert processor.counters.completed == 1
    assert "TimeoutError" in (processor.health().last_error or "")


@pytest.mark.asyncio
async def test_priority_lanes_drain_higher_first_without_starving_lower(
    client: InMemoryQueueClient,
) -> None:
    for name in ("high", "low"):
        await client.create_queue(name)
    await client.send_messages("high", [qr.Message(b"high") for _ in range(40)])
    await client.send_messages("low", [qr.Message(b"low") for _ in range(10)])
    seen: list[bytes] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        seen.append(message.body)

    lanes = [qr.Lane("high", weight=4), qr.Lane("low", weight=1)]
    async with qr.Processor(client, lanes, handle, max_concurrency=1):
        await eventually(lambda: len(seen) == 50)
    first_half = seen[:25]
    assert first_half.count(b"high") > first_half.count(b"low") > 0  # favoured, not starved
    assert seen[:5].count(b"high") >= 3


@pytest.mark.asyncio
async def test_session_lanes_take_sessions_from_every_lane(client: InMemoryQueueClient) -> None:
    for name in ("vip", "std"):
        await client.create_queue(name, requires_session=True)
    await client.send_message("std", qr.Message(b"std", session_id="s"))
    await client.send_message("vip", qr.Message(b"vip", session_id="v"))
    seen: list[bytes] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        seen.append(message.body)

    async with qr.Processor(client, ["vip", "std"], handle, max_concurrent_sessions=1):
        await eventually(lambda: len(seen) == 2)
    assert seen == [b"vip", b"std"]


@pytest.mark.asyncio
async def test_lanes_must_agree_on_sessions(client: InMemoryQueueClient) -> None:
    await client.create_queue("a", requires_session=True)
    await client.create_queue("b")

    async def handle(message: qr.ReceivedMessage) -> None: ...

    await client.send_message("a", qr.Message(b"m", session_id="s"))
    with pytest.raises(qr.ValidationError, match="sessions"):
        await qr.Processor(client, ["a", "b"], handle).start()
    assert client.statistics("a").locked_sessions == 0  # the session it tried is released
    with pytest.raises(qr.QueueNotFound):
        await qr.Processor(client, ["a", "missing"], handle).start()
    assert client.statistics("a").locked_sessions == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_a_handler_slower_than_the_lock_keeps_its_lock_and_is_called_once(
    client: InMemoryQueueClient, sessions: bool
) -> None:
    await client.create_queue("q", requires_session=sessions, lock_duration=0.25)
    await client.send_message("q", qr.Message(b"slow", session_id="s" if sessions else None))
    calls = 0

    async def handle(message: qr.ReceivedMessage) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.75)  # three lock durations

    processor = qr.Processor(client, "q", handle)
    async with processor:
        await eventually(lambda: drained(client, "q"))
    assert calls == 1
    assert client.statistics("q").completed == 1
    assert processor.counters.lock_renewals >= 2
    assert processor.counters.locks_lost == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_a_lost_lock_is_counted_not_settled_twice_and_the_processor_moves_on(
    sessions: bool,
) -> None:
    clock = ManualClock()
    async with InMemoryQueueClient(clock=clock) as client:
        await client.create_queue("q", requires_session=sessions, lock_duration=30)
        sid = "s" if sessions else None
        await client.send_message("q", qr.Message(b"1", session_id=sid))
        calls: list[tuple[bytes, int]] = []

        async def handle(message: qr.ReceivedMessage) -> None:
            calls.append((message.body, message.delivery_count))
            if message.body == b"1" and message.delivery_count == 1:
                clock.advance(31)  # the lock lapses while the handler runs

        processor = qr.Processor(client, "q", handle, lock_renewal=False)
        async with processor:
            await eventually(lambda: drained(client, "q") and len(calls) == 2)
            await client.send_message("q", qr.Message(b"2", session_id=sid))  # it moved on
            await eventually(lambda: drained(client, "q") and len(calls) == 3)
        assert calls == [(b"1", 1), (b"1", 2), (b"2", 1)]
        assert processor.counters.locks_lost == 1
        assert processor.counters.completed == 2
        assert client.statistics("q").completed == 2
        assert "lost" in (processor.health().last_error or "")


class FlakyReceives(InMemoryQueueClient):
    """The in-memory adapter whose first receives fail as a provider outage would."""

    def __init__(self, failures: int) -> None:
        super().__init__(default_timeout=1)
        self.failures = failures

    async def receive_messages(
        self, queue: qr.QueueName | str, *, max_messages: int = 10, timeout: qr.Timeout = None
    ) -> list[qr.ReceivedMessage]:
        if self.failures:
            self.failures -= 1
            raise qr.ConnectionError("connection reset by peer")
        return await super().receive_messages(queue, max_messages=max_messages, timeout=timeout)


@pytest.mark.asyncio
async def test_failed_receives_are_retried_and_the_processor_keeps_going() -> None:
    async with FlakyReceives(failures=3) as client:
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"m"))
        done: list[bytes] = []

        async def handle(message: qr.ReceivedMessage) -> None:
            done.append(message.body)

        processor = qr.Processor(client, "q", handle, max_concurrency=1)
        async with processor:
            await eventually(lambda: done == [b"m"])
        assert processor.counters.receive_errors == 3
        assert "connection reset" in (processor.health().last_error or "")


@pytest.mark.asyncio
async def test_a_client_closed_under_the_processor_stops_it() -> None:
    client = InMemoryQueueClient(default_timeout=1)
    await client.open()
    await client.create_queue("q")

    async def handle(message: qr.ReceivedMessage) -> None: ...

    processor = qr.Processor(client, "q", handle, receive_timeout=0.05)
    await processor.start()
    await client.aclose()
    await eventually(lambda: not processor.health().running)
    await processor.stop()
    assert "closed" in (processor.health().last_error or "")


@pytest.mark.asyncio
async def test_a_free_worker_receives_while_another_handles_a_slow_message(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    slow_started, fast_done = asyncio.Event(), asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        if message.body == b"slow":
            slow_started.set()
            await fast_done.wait()  # held until the next message was handled beside it
        else:
            fast_done.set()

    async with qr.Processor(client, "q", handle, max_concurrency=2, receive_timeout=0.2):
        await asyncio.sleep(0.3)  # one worker waits in a receive, the other for it
        await client.send_message("q", qr.Message(b"slow"))
        await slow_started.wait()
        await client.send_message("q", qr.Message(b"fast"))
        await asyncio.wait_for(fast_done.wait(), 30)
        await eventually(lambda: drained(client, "q"))


@pytest.mark.asyncio
async def test_stop_wakes_every_worker_that_waits_for_a_receive(
    client: InMemoryQueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    await client.create_queue("q")
    started, go_on = asyncio.Event(), asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        started.set()
        await go_on.wait()

    processor = qr.Processor(client, "q", handle, max_concurrency=4, receive_timeout=0.2)
    await processor.start()
    await asyncio.sleep(0.3)  # one worker waits in a receive, the others for it
    await client.send_message("q", qr.Message(b"m"))
    await started.wait()
    await asyncio.sleep(0.3)
    stopping = asyncio.ensure_future(processor.stop(timeout=20))
    await asyncio.sleep(0.1)
    go_on.set()
    await stopping
    assert not any("did not finish" in r.getMessage() for r in caplog.records)
    assert client.statistics("q").completed == 1
