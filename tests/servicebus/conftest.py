"""Fixtures of the Service Bus adapter's tests: our emulator (AMQP and its ATOM admin API, on one
port) once per test session, an open adapter client on it, and a relay in front of it whose
connections a test can reset."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
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
        settings.setdefault("connection_string", emulator.connection_string)
        config = qr.AzureServiceBusConfig(**settings)
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


class Proxy:
    """A TCP relay on a free loopback port in front of the emulator; `cut` resets every
    connection through it at once (a network failure as the SDK meets it), `freeze` holds
    every byte back until `thaw`."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, upstream))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while data := await source.read(65536):
                    await self._flowing.wait()
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))
        self._writers.difference_update((writer, upstream))

    def freeze(self) -> None:
        """Stop relaying (connections stay open, nothing arrives): a peer that went silent."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Reset every connection through the relay (new ones are relayed as before)."""
        for writer in list(self._writers):
            sock = writer.get_extra_info("socket")
            if sock is not None:  # RST, not FIN: as a dropped connection looks
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._writers.clear()

    async def aclose(self) -> None:
        self.thaw()
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest_asyncio.fixture
async def proxy(emulator: Any) -> AsyncIterator[Proxy]:
    relay = Proxy(emulator.port)
    await relay.start()
    yield relay
    await relay.aclose()
