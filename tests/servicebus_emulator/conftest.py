"""Fixtures of the emulator's SDK fidelity tests: one emulator per test session on a free port,
a fresh queue per test, and the unmodified async SDK client pointed at it."""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

pytest.importorskip("proton")
pytest.importorskip("azure.servicebus")

from azure.servicebus.aio import ServiceBusClient

from queue_runtime.testing.servicebus_emulator import ServiceBusEmulator, running_emulator

_names = itertools.count(1)


@pytest.fixture(scope="session")
def emulator() -> Iterator[ServiceBusEmulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def make_queue(emulator: ServiceBusEmulator) -> Callable[..., str]:
    """Create a queue with a unique name and the given QueueDescription settings."""

    def make(**settings: Any) -> str:
        name = f"fidelity-{next(_names)}"
        settings.setdefault("lock_duration", 5)
        emulator.create_queue(name, **settings)
        return name

    return make


@pytest.fixture
def queue(make_queue: Callable[..., str]) -> str:
    return make_queue()


@pytest.fixture
def session_queue(make_queue: Callable[..., str]) -> str:
    return make_queue(requires_session=True)


def without_keep_alive(client: ServiceBusClient) -> ServiceBusClient:
    """Open this client's senders and receivers with ``keep_alive=None``.

    The SDK gives every sender and receiver a keep-alive task that sleeps in 1 s steps, and
    each close waits for it (0.5 s on average); a test's connections never idle long enough to
    need it. The option is per handler (the client's own ``keep_alive`` is not passed on), so
    the two factories get it as a default argument; the SDK itself is untouched.
    """
    client.get_queue_sender = functools.partial(  # type: ignore[method-assign]
        client.get_queue_sender, keep_alive=None
    )
    client.get_queue_receiver = functools.partial(  # type: ignore[method-assign]
        client.get_queue_receiver, keep_alive=None
    )
    return client


@pytest_asyncio.fixture
async def client(emulator: ServiceBusEmulator) -> AsyncIterator[ServiceBusClient]:
    async with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
        yield without_keep_alive(client)
