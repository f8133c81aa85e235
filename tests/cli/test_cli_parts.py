"""``worker`` and ``emulator servicebus`` through the real entry point (they need the runtime's
`Processor` and the Service Bus emulator; skipped where this checkout has not got them yet)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import entry_point

import queue_runtime as qr
from queue_runtime.cli._operations import original_id

HANDLER = """
import json, os

async def handle(message):
    with open(os.environ["CLI_WORKER_OUT"], "a") as out:
        out.write(json.dumps([message.message_id, message.body.decode(),
                              dict(message.attributes), message.session_id]) + "\\n")
"""


def _wait_for_lines(path: Path, count: int, process: subprocess.Popen[bytes]) -> list[object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and len(lines := path.read_text().splitlines()) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"worker did not process {count} messages: {process.communicate()}")


async def _dead_lettered_then_back(url: str, queue: str) -> None:
    async with qr.create_client(url) as client:
        await client.create_queue(queue, requires_session=True, lock_duration=5)
        await client.send_message(
            queue, qr.Message(b"again", session_id="pr-9", attributes={"k": "v"}, message_id="r1")
        )
        session = await client.accept_session(queue, timeout=2)
        assert session is not None
        async with session:
            [message] = await session.receive_messages(timeout=2)
            await session.dead_letter_message(message, reason="handler bug")


@pytest.mark.skipif(not hasattr(qr, "Processor"), reason="queue_runtime.Processor has not landed")
def test_a_redriven_dead_letter_is_processed_again_by_the_worker(
    sqs_url: str, name: str, tmp_path: Path
) -> None:
    (tmp_path / "cli_handler_mod.py").write_text(HANDLER)
    out = tmp_path / "processed.jsonl"
    env = {**os.environ, "QUEUE_RUNTIME_URL": sqs_url, "CLI_WORKER_OUT": str(out)}
    asyncio.run(_dead_lettered_then_back(sqs_url, name))
    moved = subprocess.run(
        [*entry_point(), "dlq", "redrive", name], env=env, capture_output=True, timeout=60
    )
    assert moved.returncode == 0, moved.stderr
    worker = subprocess.Popen(
        [*entry_point(), "worker", "cli_handler_mod:handle", "--queue", name, "--sessions", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        processed = _wait_for_lines(out, 1, worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    [(redriven_id, *rest)] = processed
    assert original_id(redriven_id) == "r1" and rest == ["again", {"k": "v"}, "pr-9"]


def test_emulator_servicebus_prints_its_connection_string_and_stops_on_sigint() -> None:
    pytest.importorskip("queue_runtime.testing.servicebus_emulator")
    process = subprocess.Popen(
        [*entry_point(), "emulator", "servicebus", "--port", "0", "--admin-port", "0"],
        env=_without("QUEUE_RUNTIME_URL"),  # the one command that needs no queue URL
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("AZURE_SERVICEBUS_CONNECTION_STRING=Endpoint=sb://"), line
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err


def _without(variable: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != variable}


def test_emulator_servicebus_without_its_extra_names_the_extra() -> None:
    """python-qpid-proton missing (its import blocked, as an installation without the extra)."""
    shim = "import sys; sys.modules['proton'] = None; from queue_runtime.cli import main; main()"
    done = subprocess.run(
        [sys.executable, "-c", shim, "emulator", "servicebus", "--port", "0"],
        env=_without("QUEUE_RUNTIME_URL"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ConfigurationError: the Service Bus emulator needs")
    assert "pip install 'queue-runtime[emulator]'" in done.stderr and "'proton'" in done.stderr


@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
def test_emulator_servicebus_on_a_port_in_use_names_the_flag(flag: str) -> None:
    pytest.importorskip("queue_runtime.testing.servicebus_emulator")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"--port": "0", "--admin-port": "0", flag: port}
        done = subprocess.run(
            [*entry_point(), "emulator", "servicebus", *(x for kv in ports.items() for x in kv)],
            env=_without("QUEUE_RUNTIME_URL"), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 1 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ConfigurationError: the emulator cannot listen:")
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"choose another with {flag} (0: any free port" in done.stderr
