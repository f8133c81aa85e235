"""Fixtures of the emulator's SDK fidelity tests: one emulator per test session on a free port,
a fresh queue per test, and the unmodified async SDK client pointed at it."""

from __future__ import annotations

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


@pytest_asyncio.fixture
async def client(emulator: ServiceBusEmulator) -> AsyncIterator[ServiceBusClient]:
    async with ServiceBusClient.from_connection_string(emulator.connection_string) as client:
        yield client
