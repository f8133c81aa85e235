"""``python -m queue_runtime.testing.servicebus_emulator`` as a user starts it by hand."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient

pytestmark = pytest.mark.asyncio


async def test_the_printed_connection_string_works() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "queue_runtime.testing.servicebus_emulator",
        "--port",
        "0",
        "--admin-port",
        "-1",
        "--queue",
        "hello",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert line.startswith("Endpoint=sb://127.0.0.1:") and "UseDevelopmentEmulator=true" in line
        async with ServiceBusClient.from_connection_string(line) as client:
            async with client.get_queue_sender("hello") as sender:
                await sender.send_messages(ServiceBusMessage("from the command line"))
            async with client.get_queue_receiver("hello") as receiver:
                [message] = await receiver.receive_messages(max_wait_time=5)
                assert str(message) == "from the command line"
                await receiver.complete_message(message)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
