"""A PostgreSQL server that keeps the socket open but stops answering (a silent network
partition, made by a loopback proxy that can freeze): every call fails typed in bounded time,
the client works again once the network does, and a receive's own wait is not cut short.

Bounds come from the URL (``command_timeout=2&connect_timeout=2``); the tests assert only
upper bounds, with a wide margin for a loaded machine. What a test needs in place beforehand
is made by a client that does not go through the proxy (and has the default bounds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

import asyncpg
import pytest
from frozen_proxy import FreezableProxy
from sql_helpers import postgres_url, schema_url

import queue_runtime as qr

pytestmark = pytest.mark.asyncio

#: Seconds a call may take against a frozen server with the bounds above (2 s each): any
#: answer in time passes; a hang would take as long as the test runs.
WITHIN = 20.0
BOUNDS = "command_timeout=2&connect_timeout=2"


def through(proxy: FreezableProxy, schema: str, query: str = "") -> str:
    """The URL of ``schema`` through the proxy, with the short bounds and ``query``."""
    return schema_url(proxy.url(postgres_url()), schema, f"{BOUNDS}&{query}" if query else BOUNDS)


def direct(schema: str) -> qr.QueueClient:
    """A client of ``schema`` that does not go through the proxy."""
    return qr.create_client(schema_url(postgres_url(), schema))


async def timed(call: Awaitable[Any]) -> tuple[BaseException | None, float]:
    """What ``call`` raised (None if nothing) and how long it took; a hang fails the test."""
    start = monotonic()
    try:
        await asyncio.wait_for(call, WITHIN * 3)
    except TimeoutError:
        raise AssertionError("the call hung") from None
    except qr.QueueError as exc:
        return exc, monotonic() - start
    return None, monotonic() - start


async def test_every_call_on_a_silent_server_fails_typed_in_bounded_time_and_recovers(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    async with direct(pg_schema) as setup:
        for queue in ("q", "after"):
            await setup.create_queue(queue)
        await setup.create_queue("s", requires_session=True)
        await setup.send_message("q", qr.Message(b"held"))
        await setup.send_message("s", qr.Message(b"in a session", session_id="a"))
    # two live connections in each pool, so each call below meets a silent statement
    client = qr.create_client(through(proxy, pg_schema, "min_pool_size=2&max_pool_size=2"))
    async with client:
        held = await client.receive_message("q", timeout=0)
        assert held is not None

        proxy.freeze()
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "receive": lambda: client.receive_message("q", timeout=0),
            "send": lambda: client.send_message("q", qr.Message(b"maybe")),
            "complete": lambda: client.complete_message(held),
            "accept_session": lambda: client.accept_session("s", timeout=0),
        }
        names = list(calls)
        outcomes = await asyncio.gather(*(timed(calls[name]()) for name in names))
        for name, (error, elapsed) in zip(names, outcomes, strict=True):
            assert isinstance(error, qr.TimeoutError | qr.ConnectionError), (name, error)
            assert error.retryable, name
            assert elapsed < WITHIN, (name, elapsed)
            # each statement was sent and may have run: a write may have happened, a receive
            # or an accept may have locked what it took, and says so
            assert error.outcome_unknown, name
        receive_error = outcomes[0][0]
        assert "lock lapses" in str(receive_error)
        assert "lease lapses" in str(outcomes[3][0])

        accepted = proxy.accepted
        proxy.thaw()
        # the same client, not reopened: new connections replace the closed ones
        await client.send_message("after", qr.Message(b"after the partition"))
        got = await client.receive_message("after", timeout=5)
        assert got is not None and got.body == b"after the partition"
        await client.complete_message(got)
        assert await client.receive_message("after", timeout=0) is None
        session = await client.accept_session("s", "a")
        assert session is not None
        await session.close()
        # the connections whose statements timed out were closed, not pooled again
        assert proxy.accepted >= accepted + 2


async def test_a_transaction_on_a_silent_server_is_a_typed_error_and_all_or_nothing(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    """A batch is a transaction of several statements: its BEGIN meets the silence, the call
    fails typed, and after the partition the batch is stored whole or not at all."""
    async with direct(pg_schema) as setup:
        await setup.create_queue("q")
    async with qr.create_client(through(proxy, pg_schema)) as client:
        proxy.freeze()
        batch = [qr.Message(b"%d" % n) for n in range(3)]
        error, elapsed = await timed(client.send_messages("q", batch))
        assert isinstance(error, qr.TimeoutError | qr.ConnectionError)
        assert error.outcome_unknown and elapsed < WITHIN
        proxy.thaw()
        await client.send_messages("q", [qr.Message(b"next")])
        bodies = [m.body for m in await client.peek_messages("q", max_messages=10)]
        assert bodies[-1] == b"next" and len(bodies) in (1, 4)  # all or none of the batch


async def test_a_transaction_cut_off_mid_way_is_ended_by_the_server(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    """Frozen once a batch's BEGIN reached the server (its answer is held): the call fails
    typed, and the server ends the transaction its client gave up on by itself once it idles
    as long as a statement may take, rather than holding it (and any rows it locked) until
    the network comes back; nothing of the batch is stored."""
    async with direct(pg_schema) as other:
        await other.create_queue("q")
        client = qr.create_client(through(proxy, pg_schema))
        await client.open()
        proxy.freeze_after(b"BEGIN")
        batch = [qr.Message(b"%d" % n) for n in range(3)]
        error, elapsed = await timed(client.send_messages("q", batch))
        assert isinstance(error, qr.TimeoutError | qr.ConnectionError)
        assert error.outcome_unknown and elapsed < WITHIN
        admin = await asyncpg.connect(postgres_url())
        try:
            deadline = monotonic() + WITHIN
            while await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
                f"queue-runtime {pg_schema}",
            ):
                assert monotonic() < deadline, "the abandoned transaction lingers"
                await asyncio.sleep(0.1)
        finally:
            await admin.close()
        assert await other.peek_messages("q") == []
        proxy.thaw()
        assert await client.peek_messages("q") == []
        await client.aclose()


async def test_connecting_through_a_silent_network_fails_typed_within_connect_timeout(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    proxy.freeze()
    client = qr.create_client(through(proxy, pg_schema))
    error, elapsed = await timed(client.open())
    assert isinstance(error, qr.TimeoutError | qr.ConnectionError), error
    assert not error.outcome_unknown  # nothing was sent
    assert elapsed < WITHIN
    await client.aclose()
    proxy.thaw()
    async with qr.create_client(through(proxy, pg_schema)) as client:
        await client.create_queue("q")  # the same settings, through the same proxy, now work


async def test_a_waiting_receive_outlasts_the_statement_timeout(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    """The statement timeout bounds each statement, not a receive's own wait between them."""
    async with direct(pg_schema) as other, qr.create_client(through(proxy, pg_schema)) as client:
        await other.create_queue("q")
        assert await client.receive_message("q", timeout=3) is None  # no error: just nothing
        waiting = asyncio.create_task(client.receive_message("q", timeout=WITHIN))
        await asyncio.sleep(5)  # well past a statement timeout into the wait
        await other.send_message("q", qr.Message(b"late"))
        got = await asyncio.wait_for(waiting, WITHIN)
        assert got is not None and got.body == b"late"


async def test_close_on_a_silent_server_is_bounded(proxy: FreezableProxy, pg_schema: str) -> None:
    client = qr.create_client(through(proxy, pg_schema))
    await client.open()
    proxy.freeze()
    error, elapsed = await timed(client.aclose())
    assert error is None and elapsed < WITHIN
