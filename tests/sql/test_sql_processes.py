"""Crash safety and many processes, with real processes: a consumer SIGKILLed mid-handler loses
nothing, a producer killed mid-batch leaves all of the batch or none (and a file that opens),
four consumer processes drain 10,000 messages over 100 sessions exactly once, in order, and
four taking one message at a time from a queue that is still being filled take each once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sql_helpers import store_url

import queue_runtime as qr

WORKER = str(Path(__file__).with_name("sql_worker.py"))
pytestmark = pytest.mark.asyncio


@contextmanager
def worker(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, WORKER, *args], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


@contextmanager
def consumers(
    url: str, queue: str, outs: list[Path], mode: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One worker process in ``mode`` per output file; any still running at the end is
    killed."""
    processes = [subprocess.Popen([sys.executable, WORKER, mode, url, queue, str(o)]) for o in outs]
    try:
        yield processes
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


async def assert_drained(
    client: qr.QueueClient, queue: str, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Every consumer exited cleanly and left the queue empty."""
    codes = [await asyncio.to_thread(p.wait, 120) for p in processes]
    assert codes == [0] * len(processes)
    statistics = await client.get_queue_statistics(queue)
    assert (statistics.active, statistics.locked, statistics.dead_letter) == (0, 0, 0)


async def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    assert line, f"the worker exited ({process.poll()}) without reporting"
    return line.strip()


async def test_a_consumer_killed_mid_handler_loses_nothing(
    make_client: Callable[..., qr.QueueClient], sql_config: qr.SqliteConfig | qr.PostgresConfig
) -> None:
    async with make_client() as client:
        await client.create_queue("jobs", lock_duration=1)
        sent = qr.Message(b"precious", attributes={"k": "v"})
        await client.send_message("jobs", sent)
        with worker("hang", store_url(sql_config), "jobs") as process:
            assert await read_line(process) == f"RECEIVED {sent.message_id} 1"
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        again = await client.receive_message("jobs", timeout=5)
        assert again is not None, "the killed consumer's message never came back"
        assert (again.message_id, again.body, again.delivery_count) == (
            sent.message_id,
            b"precious",
            2,
        )
        assert dict(again.attributes) == {"k": "v"}
        await client.complete_message(again)
        assert await client.receive_message("jobs", timeout=0) is None


async def test_a_producer_killed_mid_batch_leaves_whole_batches(
    make_client: Callable[..., qr.QueueClient],
    sql_config: qr.SqliteConfig | qr.PostgresConfig,
) -> None:
    size = 250
    async with make_client() as client:
        await client.create_queue("batches")
    for round_ in range(3):
        with worker("produce", store_url(sql_config), "batches", str(size)) as process:
            await read_line(process)  # at least one batch is in
            await asyncio.sleep(0.05 * round_)
            os.kill(process.pid, signal.SIGKILL)  # most likely in the middle of a batch
            process.wait(timeout=10)
        if isinstance(sql_config, qr.SqliteConfig):
            with sqlite3.connect(sql_config.path) as raw:
                assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    async with make_client() as client:  # the file (or schema) opens after the kills
        batches: dict[str, set[str]] = defaultdict(set)
        while got := await client.receive_messages("batches", max_messages=100, timeout=0):
            for message in got:
                batch, index = message.body.decode().split(":")
                batches[batch].add(index)
            await client.complete_messages(got)
    assert batches, "no batch was stored"
    torn = {batch: len(indexes) for batch, indexes in batches.items() if len(indexes) != size}
    assert not torn, f"batches stored in part: {torn}"


@pytest.mark.slow
async def test_four_processes_drain_100_sessions_exactly_once_in_order(
    make_client: Callable[..., qr.QueueClient],
    sql_config: qr.SqliteConfig | qr.PostgresConfig,
    tmp_path: Path,
) -> None:
    sessions, total = 100, 10_000
    async with make_client() as client:
        await client.create_queue("orders", requires_session=True)
        messages = [
            qr.Message(f"{i}".encode(), session_id=f"s{i % sessions}") for i in range(total)
        ]
        for start in range(0, total, 1000):
            await client.send_messages("orders", messages[start : start + 1000])
        outs = [tmp_path / f"consumer-{n}.log" for n in range(4)]
        with consumers(store_url(sql_config), "orders", outs, "drain") as processes:
            await assert_drained(client, "orders", processes)

    completions: list[tuple[int, str, int]] = []
    for out in outs:
        for line in out.read_text().splitlines():
            stamp, session_id, body = line.split()
            completions.append((int(stamp), session_id, int(body)))
    bodies = sorted(body for _, _, body in completions)
    assert bodies == list(range(total)), "some message was lost or completed twice"
    per_session: dict[str, list[int]] = defaultdict(list)
    for _, session_id, body in sorted(completions, key=lambda c: c[0]):
        per_session[session_id].append(body)
    for session_id, order in per_session.items():
        assert order == sorted(order), f"session {session_id} out of order"
        assert all(body % sessions == int(session_id[1:]) for body in order)
    assert len(per_session) == sessions


@pytest.mark.slow
async def test_four_processes_taking_one_at_a_time_while_sends_go_on_take_each_once(
    make_client: Callable[..., qr.QueueClient],
    sql_config: qr.SqliteConfig | qr.PostgresConfig,
    tmp_path: Path,
) -> None:
    """One-message sends, receives and completes each run as one statement of their own:
    under contention from other processes' writers they still never take a message twice."""
    total = 3000
    async with make_client() as client:
        await client.create_queue("jobs")
        outs = [tmp_path / f"taker-{n}.log" for n in range(4)]
        with consumers(store_url(sql_config), "jobs", outs, "take") as processes:
            for i in range(total):  # one at a time, beside the takers' writes
                await client.send_message("jobs", qr.Message(f"{i}".encode()))
            await assert_drained(client, "jobs", processes)
    bodies = sorted(int(line) for out in outs for line in out.read_text().splitlines())
    assert bodies == list(range(total)), "some message was lost or taken twice"
    assert sum(1 for out in outs if out.read_text()) >= 2  # they did take turns
