"""SQLite transactions run on the event loop only when they can neither wait nor sync: other
tasks keep running through a long run of them, a write lock held elsewhere is waited for in
the worker thread, ``synchronous=full`` commits never run on the loop, and checkpoints (in the
worker) keep the WAL short. An op of one statement runs it without ``BEGIN``/``COMMIT``."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

import queue_runtime as qr
from queue_runtime.adapters.sql import _rules as rules
from queue_runtime.adapters.sql import sqlite as sqlite_adapter
from queue_runtime.adapters.sql.sqlite import SqliteQueueClient

pytestmark = pytest.mark.asyncio


def _client(tmp_path: Path, **settings: object) -> SqliteQueueClient:
    config = qr.SqliteConfig(path=str(tmp_path / "queues.db"), **settings)  # type: ignore[arg-type]
    return SqliteQueueClient(config, default_timeout=5)


async def test_other_tasks_run_during_a_long_run_of_transactions(tmp_path: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    async with _client(tmp_path) as client:
        await client.create_queue("q")
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks = 0
        for _ in range(1000):  # each send may complete without suspending
            await client.send_message("q", qr.Message(b"x"))
        task.cancel()
        assert ticks >= 10  # the loop ran the ticker every few milliseconds


async def test_a_write_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    async with _client(tmp_path) as client:
        await client.create_queue("q")
        other = sqlite3.connect(tmp_path / "queues.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
        send = asyncio.create_task(client.send_message("q", qr.Message(b"waited")))
        beats = 0
        for _ in range(20):
            await asyncio.sleep(0.01)  # the loop is not blocked while the send waits
            beats += 1
        assert beats == 20 and not send.done()
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(send, 5)
        got = await client.receive_message("q", timeout=0)
        assert got is not None and got.body == b"waited"
        await client.complete_message(got)
        # and, the lock free again, transactions run on the loop once more
        await client.send_message("q", qr.Message(b"inline"))
        assert (await client.receive_message("q", timeout=0)) is not None


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads SQLite transactions run in, in order."""
    names: list[str] = []
    transaction = sqlite_adapter.SqliteDatabase._transaction

    def recorded(self: sqlite_adapter.SqliteDatabase, op: object, **how: object) -> object:
        names.append(threading.current_thread().name)
        return transaction(self, op, **how)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_adapter.SqliteDatabase, "_transaction", recorded)
    return names


async def test_full_synchronous_commits_never_run_on_the_loop(
    tmp_path: Path, threads: list[str]
) -> None:
    async with _client(tmp_path, synchronous="full") as client:
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"x"))
        got = await client.receive_message("q", timeout=0)
        assert got is not None
        await client.complete_message(got)
    assert set(threads) == {"queue-runtime-sqlite"}


async def test_big_bodies_are_written_in_the_worker(tmp_path: Path, threads: list[str]) -> None:
    async with _client(tmp_path) as client:
        await client.create_queue("q")
        threads.clear()
        await client.send_message("q", qr.Message(b"x" * 100))
        await client.send_message("q", qr.Message(b"x" * (300 * 1024)))
        await client.send_messages("q", [qr.Message(b"y" * (100 * 1024)) for _ in range(3)])
        loop = threading.current_thread().name
        assert threads == [loop, "queue-runtime-sqlite", "queue-runtime-sqlite"]


async def test_checkpoints_keep_the_wal_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_adapter, "CHECKPOINT_FRAMES", 200)
    wal = tmp_path / "queues.db-wal"
    async with _client(tmp_path) as client:
        await client.create_queue("q")
        for _ in range(1500):  # about 6,000 pages written: 24 MiB of WAL if never copied
            await client.send_message("q", qr.Message(b"x" * 100))
        await asyncio.sleep(0.2)  # the last checkpoint's second pass
        assert wal.stat().st_size < 8 * 1024 * 1024  # what commits add while one runs
        got = await client.receive_messages("q", max_messages=100, timeout=0)
        assert len(got) == 100
        await client.complete_messages(got)
        statistics = await client.get_queue_statistics("q")
        assert statistics.active == 1400


@pytest.fixture
def statements() -> list[str]:
    """Every statement the next client's loop connection runs (set by `_traced`)."""
    return []


def _traced(client: SqliteQueueClient, statements: list[str]) -> None:
    """Record the first word of every statement run (sqlite3 reports a trigger's statements
    as repeats of the statement that fired it: those are left out)."""
    connection = client._db._connection  # type: ignore[attr-defined]
    last: list[str] = [""]

    def trace(sql: str) -> None:
        if sql != last[0]:
            last[0] = sql
            statements.append(sql.split()[0].upper())

    connection.set_trace_callback(trace)


async def test_one_statement_ops_run_without_begin(tmp_path: Path, statements: list[str]) -> None:
    async with _client(tmp_path) as client:
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"first"))
        assert await client.receive_message("q", timeout=0) is not None  # reads and sweeps
        _traced(client, statements)
        await client.send_message("q", qr.Message(b"x"))
        got = await client.receive_message("q", timeout=0)
        assert got is not None and got.body == b"x"
        await client.complete_message(got)
        assert statements == ["INSERT", "UPDATE", "DELETE"]
        statements.clear()
        await client.send_messages("q", [qr.Message(b"y"), qr.Message(b"z")])
        assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"  # a batch: all or none
        with pytest.raises(qr.MessageLockLost):  # a failed one changed nothing
            await client.complete_message(got)


async def test_a_one_statement_op_waits_for_a_lock_held_elsewhere_off_the_loop(
    tmp_path: Path,
) -> None:
    async with _client(tmp_path) as client:
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"x"))
        got = await client.receive_message("q", timeout=0)
        assert got is not None
        other = sqlite3.connect(tmp_path / "queues.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        complete = asyncio.create_task(client.complete_message(got))
        await asyncio.sleep(0.05)
        assert not complete.done()  # its DELETE was refused and runs again in the worker
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(complete, 5)
        assert (await client.get_queue_statistics("q")).active == 0


async def test_an_op_that_breaks_its_last_statement_promise_is_refused(tmp_path: Path) -> None:
    def broken() -> rules.Op[None]:
        yield rules.Query("SELECT 1", (), True)
        yield rules.Query("SELECT 2", ())

    async with _client(tmp_path) as client:
        await client.create_queue("q")
        with pytest.raises(qr.ProviderError, match=r"after the last one.*committed by itself"):
            await client._db.run(broken(), "broken")  # type: ignore[attr-defined]


async def test_session_receive_and_complete_are_one_statement_that_checks_the_lease(
    tmp_path: Path, statements: list[str]
) -> None:
    async with _client(tmp_path) as client:
        await client.create_queue("s", requires_session=True)
        await client.send_messages("s", [qr.Message(b, session_id="x") for b in (b"a", b"b", b"c")])
        session = await client.accept_session("s", "x")
        first, second = await session.receive_messages(max_messages=2, timeout=0)  # sweeps
        _traced(client, statements)
        third = await session.receive_message(timeout=0)
        assert third is not None and third.body == b"c"
        await session.complete_message(first)
        assert statements == ["UPDATE", "DELETE"]  # the lease is checked inside each
        with pytest.raises(qr.MessageLockLost) as settled:
            await session.complete_message(first)
        assert not isinstance(settled.value, qr.SessionLockLost)  # the lease still holds
        assert await session.receive_message(timeout=0) is None
        await session.close()
        with pytest.raises(qr.SessionLockLost):
            await session.complete_message(second)
        with pytest.raises(qr.SessionLockLost):
            await session.receive_message(timeout=0)
