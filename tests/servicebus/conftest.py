"""Fixtures of the Service Bus adapter's tests: our emulator (AMQP and its ATOM admin API, on one
port) once per test session, and an open adapter client on it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

import queue_runtime as qr

_names = itertools.count(1)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    pytest.importorskip("proton", reason="the emulator needs queue-runtime[emulator]")
    from queue_runtime.testing.servicebus_emulator import running_emulator

    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def make_client(emulator: Any) -> Callable[..., Any]:
    """A new, unopened adapter client on the emulator."""
    from queue_runtime.adapters.servicebus import ServiceBusQueueClient

    def make(**settings: Any) -> ServiceBusQueueClient:
        config = qr.AzureServiceBusConfig(connection_string=emulator.connection_string, **settings)
        return ServiceBusQueueClient(config, default_timeout=timedelta(seconds=5))

    return make


@pytest_asyncio.fixture
async def client(make_client: Callable[..., Any]) -> AsyncIterator[Any]:
    async with make_client() as client:
        yield client


@pytest.fixture
def new_name() -> Callable[[], qr.QueueName]:
    return lambda: qr.QueueName(f"sb-{next(_names)}")


@pytest_asyncio.fixture
async def queue(client: Any, new_name: Callable[[], qr.QueueName]) -> AsyncIterator[qr.QueueName]:
    name = new_name()
    await client.create_queue(name, lock_duration=2)
    yield name
    await client.delete_queue(name)


@pytest_asyncio.fixture
async def session_queue(
    client: Any, new_name: Callable[[], qr.QueueName]
) -> AsyncIterator[qr.QueueName]:
    name = new_name()
    await client.create_queue(name, requires_session=True, lock_duration=2)
    yield name
    await client.delete_queue(name)
