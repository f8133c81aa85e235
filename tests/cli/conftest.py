"""Fixtures of the CLI tests: the real entry point in a subprocess (on brokers that outlive one
invocation: SQS over moto's server, SQLite where that adapter exists) and click's runner
in-process (on ``memory://name``, whose broker lives as long as this test process)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

import queue_runtime as qr

pytest.importorskip("click")

from cli_helpers import entry_point

from queue_runtime.cli._app import cli

T = TypeVar("T")


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def sqs_url(moto_server: str) -> str:
    return (
        f"sqs://?endpoint_url={moto_server}&region=us-east-1"
        "&access_key_id=testing&secret_access_key=testing"
    )


@pytest.fixture(params=["sqs", "sqlite"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A broker that outlives one invocation: SQS over moto, and SQLite where it exists."""
    if request.param == "sqs":
        return str(request.getfixturevalue("sqs_url"))
    url = f"sqlite:///{tmp_path / 'queues.db'}"
    try:
        qr.create_client(url)
    except qr.ConfigurationError as exc:
        pytest.skip(f"no SQLite adapter in this version: {exc}")
    return url


def _runner(default_url: str) -> Callable[..., Completed]:
    def run(*args: str, input: str | bytes | None = None, url: str | None = None) -> Completed:
        env = {**os.environ, "QUEUE_RUNTIME_URL": url or default_url}
        data = input.encode() if isinstance(input, str) else input
        done = subprocess.run(
            [*entry_point(), *args], input=data, capture_output=True, env=env, timeout=60
        )
        return Completed(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


@pytest.fixture
def command(durable_url: str) -> Callable[..., Completed]:
    """Run ``queue-runtime ARGS`` in a subprocess against each durable broker."""
    return _runner(durable_url)


@pytest.fixture
def sqs_command(sqs_url: str) -> Callable[..., Completed]:
    """Run ``queue-runtime ARGS`` in a subprocess against moto's SQS."""
    return _runner(sqs_url)


@pytest.fixture
def memory_url() -> str:
    """A fresh named in-memory broker (shared by every client of this process)."""
    return f"memory://cli-{secrets.token_hex(4)}"


@pytest.fixture
def invoke(memory_url: str) -> Callable[..., Result]:
    """Run the command in-process with click's runner against ``memory_url``."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(cli, ["--url", memory_url, *args], input=input)

    return run


@pytest.fixture
def on_broker(memory_url: str) -> Callable[[Callable[[qr.QueueClient], Coroutine[Any, Any, T]]], T]:
    """Run ``work(client)`` on an open client of the test's in-memory broker."""

    def run(work: Callable[[qr.QueueClient], Coroutine[Any, Any, T]]) -> T:
        async def main() -> T:
            async with qr.create_client(memory_url) as client:
                return await work(client)

        return asyncio.run(main())

    return run


@pytest.fixture
def name() -> str:
    return f"cli-{secrets.token_hex(4)}"
