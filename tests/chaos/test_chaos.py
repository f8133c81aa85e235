"""Chaos: worker processes SIGKILLed one after another while they drain a session queue.

Three worker processes run a `Processor` on 1,000 messages over 50 sessions with 3 s locks;
every second one of them, chosen at random, is SIGKILLed and a new one started in its place.
When the queue is drained: every message was completed (nothing left, locked or
dead-lettered), and within each session the first handling of each message came in send
order (a message handled again after a kill is fine; one handled before an earlier one of its
session was first handled is not). On SQLite (a file shared by the processes) and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import queue_runtime as qr

WORKER = Path(__file__).with_name("chaos_worker.py")
SESSIONS = 50
PER_SESSION = 20
WORKERS = 3
#: How long the drain may take at most: far beyond what it needs on a loaded 2-core machine
#: (about 10-40 s), so that only a stall fails the test.
DEADLINE = 240.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(DEADLINE + 60)]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty store that worker processes can share."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'chaos.db'}"
        return
    postgres = pytest.importorskip("queue_runtime.adapters.sql.postgres")
    base = os.environ.get(
        "QUEUE_RUNTIME_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"qr_chaos_{os.getpid()}_{random.randrange(1 << 30):x}"
    yield f"{base}{'&' if '?' in base else '?'}schema_name={schema}"
    asyncio.run(postgres.drop_schema(qr.PostgresConfig(dsn=base, schema_name=schema)))


def _start(url: str, queue: str, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, queue, str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _left(url: str, queue: str) -> qr.QueueStatistics:
    async with qr.create_client(url) as client:
        return await client.get_queue_statistics(queue)


def test_sigkill_every_second_loses_nothing_and_keeps_session_order(
    store: str, tmp_path: Path
) -> None:
    queue = "chaos"

    async def fill() -> None:
        async with qr.create_client(store) as client:
            await client.create_queue(
                queue, requires_session=True, lock_duration=3, max_delivery_count=10
            )
            for n in range(PER_SESSION):
                await client.send_messages(
                    queue,
                    [qr.Message(f"s{s}:{n}".encode(), session_id=f"s{s}") for s in range(SESSIONS)],
                )

    asyncio.run(fill())
    log = tmp_path / "handled.log"
    workers = [_start(store, queue, log) for _ in range(WORKERS)]
    kills = 0
    started = time.monotonic()
    try:
        while True:
            time.sleep(1.0)
            victim = random.randrange(WORKERS)
            workers[victim].kill()
            workers[victim].wait()
            kills += 1
            workers[victim] = _start(store, queue, log)
            stats = asyncio.run(_left(store, queue))
            if stats.active == stats.locked == stats.scheduled == 0:
                break
            assert time.monotonic() - started < DEADLINE, f"not drained: {stats}"
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
    stats = asyncio.run(_left(store, queue))
    assert (stats.active, stats.locked, stats.scheduled, stats.dead_letter) == (0, 0, 0, 0)
    # sessions leased by a killed worker lapse with their lock (3 s); nothing holds them after
    released_by = time.monotonic() + 3 + 30
    while stats.locked_sessions and time.monotonic() < released_by:
        time.sleep(0.5)
        stats = asyncio.run(_left(store, queue))
    assert stats.locked_sessions == 0
    assert kills > 1  # the drain outlasted a kill

    first: dict[str, list[int]] = {}
    seen: set[tuple[str, int]] = set()
    entries = sorted(
        (int(t), s, int(n))
        for t, s, n, _ in (line.split() for line in log.read_text().splitlines())
    )
    for _, session, n in entries:
        if (session, n) not in seen:
            seen.add((session, n))
            first.setdefault(session, []).append(n)
    assert len(seen) == SESSIONS * PER_SESSION  # every message was handled
    out_of_order = {s: ns for s, ns in first.items() if ns != sorted(ns)}
    assert out_of_order == {}
