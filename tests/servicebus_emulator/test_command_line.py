"""``python -m queue_runtime.testing.servicebus_emulator`` as a user starts it by hand."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from pathlib import Path

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


@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
async def test_a_port_in_use_is_one_line_naming_the_flag(flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"--port": "0", "--admin-port": "0", flag: port}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "queue_runtime.testing.servicebus_emulator",
            *(x for kv in ports.items() for x in kv),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 1 and out == b""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: ") and f"port {port} on 127.0.0.1" in stderr
    assert f"already in use: choose another with {flag} (0: any free port" in stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_readme_example_prints_the_connection_string_it_shows() -> None:
    """The README's command, on free ports in place of its own, prints its connection string."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Your Service Bus code on your own machine", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    [command] = [line for line in block.splitlines() if line.startswith("python -m ")]
    [shown] = re.findall(r"AZURE_SERVICEBUS_CONNECTION_STRING='([^']+)'", block)
    argv = command.split("#", 1)[0].split()[1:]
    ports = {flag: argv[argv.index(flag) + 1] for flag in ("--port", "--admin-port")}
    assert "5672" not in ports.values()  # RabbitMQ's (and many a developer's broker's)
    free = {flag: str(_free_port()) for flag in ports}
    for flag, port in free.items():
        argv[argv.index(flag) + 1] = port
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    assert line == shown.replace(f":{ports['--port']};", f":{free['--port']};")
