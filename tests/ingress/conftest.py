"""Fixtures of the ingress tests: a real uvicorn server on a loopback port, in the test's loop,
and our Service Bus emulator for the ingress in front of a real AMQP queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from starlette.types import ASGIApp  # noqa: E402

Serve = Callable[[ASGIApp], Awaitable[str]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(app)`` runs ``app`` under uvicorn on 127.0.0.1 and returns its base URL."""
    running: list[tuple[object, asyncio.Task[None]]] = []

    async def start(app: ASGIApp) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in running:
        server.should_exit = True  # type: ignore[attr-defined]
        await task


@pytest.fixture(scope="session")
def servicebus_emulator() -> Iterator[Any]:
    """Our Service Bus emulator on free loopback ports, once per test session."""
    pytest.importorskip("proton", reason="the emulator needs queue-runtime[emulator]")
    pytest.importorskip("azure.servicebus", reason="the adapter needs queue-runtime[azure]")
    from queue_runtime.testing.servicebus_emulator import running_emulator

    with running_emulator() as emulator:
        yield emulator
