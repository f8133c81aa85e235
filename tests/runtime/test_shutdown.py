"""Graceful shutdown: in-flight handlers finish, what has not started is abandoned, sessions
are released; proven in-process and by killing a real worker process (SIGTERM, and SIGKILL
on SQS where the messages outlive the process and come back when their locks run out)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from runtime_helpers import eventually

import queue_runtime as qr
from queue_runtime.adapters.memory import InMemoryQueueClient

WORKER = Path(__file__).with_name("worker_process.py")


@pytest.mark.asyncio
@pytest.mark.parametrize("sessions", [False, True], ids=["messages", "sessions"])
async def test_stop_lets_in_flight_handlers_finish_and_gives_back_the_rest(
    client: InMemoryQueueClient, sessions: bool
) -> None:
    await client.create_queue("q", requires_session=sessions)
    await client.send_messages(
        "q",
        [
            qr.Message(f"{n}".encode(), session_id=f"s{n % 3}" if sessions else None)
            for n in range(30)
        ],
    )
    started: list[bytes] = []
    finished: list[bytes] = []

    async def handle(message: qr.ReceivedMessage) -> None:
        started.append(message.body)
        await asyncio.sleep(0.05)
        finished.append(message.body)

    processor = qr.Processor(client, "q", handle, max_concurrency=4, max_concurrent_sessions=2)
    await processor.start()
    await eventually(lambda: len(started) >= 2)
    await processor.stop(timeout=5)
    assert not processor.health().running
    assert started == finished  # nothing cut short
    stats = client.statistics("q")
    assert stats.completed == len(finished)
    assert stats.locked == 0  # nothing still held
    assert stats.locked_sessions == 0
    assert stats.active == 30 - len(finished)  # the rest is there for the next worker
    await processor.stop()  # idempotent


@pytest.mark.asyncio
async def test_stop_past_its_deadline_cancels_handlers_and_abandons_their_messages(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"stuck"))
    running = asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        running.set()
        await asyncio.sleep(60)

    processor = qr.Processor(client, "q", handle)
    await processor.start()
    await running.wait()
    await processor.stop(timeout=0.05)
    stats = client.statistics("q")
    assert (stats.active, stats.locked, stats.completed) == (1, 0, 0)
    again = await client.receive_message("q", timeout=0)
    assert again is not None
    assert again.delivery_count == 2


@pytest.mark.asyncio
async def test_stop_during_a_retry_backoff_gives_the_message_back_at_once(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")
    await client.send_message("q", qr.Message(b"m"))
    failed = asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        failed.set()
        raise OSError("down")

    retry = qr.RetryPolicy(initial_delay=30, jitter=False)
    processor = qr.Processor(client, "q", handle, retry=retry)
    await processor.start()
    await failed.wait()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await processor.stop(timeout=10)
    assert loop.time() - began < 1
    assert client.statistics("q").active == 1


@pytest.mark.asyncio
async def test_a_processor_runs_once_and_stop_before_start_is_a_no_op(
    client: InMemoryQueueClient,
) -> None:
    await client.create_queue("q")

    async def handle(message: qr.ReceivedMessage) -> None: ...

    idle = qr.Processor(client, "q", handle)
    await idle.stop()
    processor = qr.Processor(client, "q", handle, receive_timeout=0.05)
    async with processor:
        assert processor.health().running
        with pytest.raises(qr.ValidationError):
            await processor.start()
    with pytest.raises(qr.ValidationError):
        await processor.start()


def start_worker(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if line.strip() != "READY":
        worker.kill()
        raise AssertionError(f"worker did not start: {line}{worker.communicate()[1]}")
    return worker


@pytest.mark.parametrize(
    ("sessions", "sig"),
    [("0", signal.SIGTERM), ("1", signal.SIGTERM), ("0", signal.SIGINT)],
    ids=["messages", "sessions", "sigint"],
)
def test_sigterm_stops_a_worker_process_gracefully_and_loses_nothing(
    sessions: str, sig: signal.Signals
) -> None:
    worker = start_worker("memory", "40", sessions)
    worker.send_signal(sig)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert not report["running"]
    assert report["started"] == report["finished"]  # every handler that began, finished
    assert len(set(report["finished"])) == len(report["finished"])
    assert report["completed"] == len(report["finished"]) > 0
    assert report["active"] + report["completed"] == 40  # the rest is back in the queue
    assert report["locked"] == report["locked_sessions"] == report["dead"] == 0


@pytest.mark.slow
def test_sigkill_loses_nothing_on_sqs_messages_come_back_when_their_locks_run_out(
    moto_server: str, tmp_path: Path
) -> None:
    pytest.importorskip("boto3")
    from queue_runtime.adapters.sqs import SqsQueueClient

    config = qr.AwsSqsConfig(
        region="us-east-1",
        endpoint_url=moto_server,
        access_key_id="testing",
        secret_access_key="testing",
    )
    queue = f"kill-{os.getpid()}-{id(tmp_path) % 10_000}"
    total = 24

    async def fill() -> None:
        async with SqsQueueClient(config, default_timeout=1) as client:
            await client.create_queue(queue, lock_duration=1, max_delivery_count=10)
            await client.send_messages(queue, [qr.Message(f"{n}".encode()) for n in range(total)])

    asyncio.run(fill())
    log = tmp_path / "handled.log"
    worker = start_worker("sqs", moto_server, queue, str(log))
    asyncio.run(asyncio.sleep(0.5))
    worker.kill()  # SIGKILL: no cleanup at all
    worker.communicate(timeout=10)
    handled_by_killed = log.read_text().split()
    assert 0 < len(handled_by_killed) < total

    async def drain() -> tuple[list[str], int]:
        handled: list[str] = []
        async with SqsQueueClient(config, default_timeout=1) as client:

            async def handle(message: qr.ReceivedMessage) -> None:
                handled.append(message.body.decode())

            done = set(handled_by_killed)
            async with qr.Processor(client, queue, handle, receive_timeout=0.5):
                await eventually(lambda: done | set(handled) >= {str(n) for n in range(total)}, 30)
                await eventually(lambda: len(handled) >= total - len(done), 30)
            dead = await client.receive_messages(qr.QueueName(queue).dead_letter, timeout=0)
            return handled, len(dead)

    handled, dead = asyncio.run(drain())
    everything = {str(n) for n in range(total)}
    assert set(handled_by_killed) | set(handled) == everything  # nothing lost
    twice = set(handled_by_killed) & set(handled)
    assert len(twice) <= 4  # at most the handlers in flight when it was killed (max_concurrency)
    assert len(handled) == len(set(handled))
    assert dead == 0


@pytest.mark.asyncio
async def test_stop_while_a_session_idles_releases_it_at_once(client: InMemoryQueueClient) -> None:
    await client.create_queue("q", requires_session=True)
    await client.send_message("q", qr.Message(b"m", session_id="s"))
    handled = asyncio.Event()

    async def handle(message: qr.ReceivedMessage) -> None:
        handled.set()

    processor = qr.Processor(client, "q", handle, session_idle_timeout=30)
    await processor.start()
    await handled.wait()
    await eventually(lambda: client.statistics("q").completed == 1)
    assert processor.health().sessions == ("s",)  # held while it idles, as asked
    loop = asyncio.get_running_loop()
    began = loop.time()
    await processor.stop(timeout=10)
    assert loop.time() - began < 5
    assert client.statistics("q").locked_sessions == 0
