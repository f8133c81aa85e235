"""A `Processor` on PostgreSQL through a network partition (a loopback proxy that freezes):
its receives fail typed in bounded time, its health says so, and it handles new messages
once the network is back, on the same client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from frozen_proxy import FreezableProxy
from sql_helpers import postgres_url, schema_url

import queue_runtime as qr

pytestmark = pytest.mark.asyncio


async def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_processor_reports_a_silent_database_and_resumes(
    proxy: FreezableProxy, pg_schema: str
) -> None:
    direct = schema_url(postgres_url(), pg_schema)
    proxied = schema_url(
        proxy.url(postgres_url()), pg_schema, "command_timeout=2&connect_timeout=2"
    )
    handled: list[bytes] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        handled.append(message.body)

    async with qr.create_client(direct) as sender, qr.create_client(proxied) as client:
        await sender.create_queue("jobs", lock_duration=5)
        processor = qr.Processor(client, "jobs", handle, receive_timeout=0.5)
        async with processor:
            await sender.send_message("jobs", qr.Message(b"before"))
            await eventually(lambda: processor.health().counters["completed"] == 1)

            proxy.freeze()
            await eventually(lambda: processor.health().counters["receive_errors"] >= 2)
            last_error = processor.health().last_error
            assert last_error is not None and "TimeoutError" in last_error, last_error
            assert processor.health().running and not processor.health().ready

            proxy.thaw()
            await sender.send_message("jobs", qr.Message(b"after"))
            await eventually(lambda: processor.health().counters["completed"] == 2)
            assert processor.health().ready
        assert handled == [b"before", b"after"]
