"""Throughput of the SQL adapters against other SQL-backed queues, measured in one run.

    python benchmarks/bench_sql.py [--messages 20000] [--repeat 3] [--dir DIR] [--postgres URL]
                                   [--skip-pg]

SQLite (same directory, same disk): put N small messages, then get + ack them, with
`litequeue` and `persist-queue` (``SQLiteAckQueue``) as baselines, against the adapter one
message at a time and in batches of 100 (``send_messages``, ``receive_messages`` +
``complete_messages``). Every figure is durable against a crash of the process (WAL with
``synchronous=NORMAL`` for litequeue and the adapter; persist-queue's default is ``FULL``).
Targets: one at a time >= 10x the faster baseline, batches of 100 >= 50x. Beside them, the
adapter's own statements run from a bare loop show what SQLite itself allows one at a time.

PostgreSQL (same database): enqueue N, then dequeue + ack with 4 concurrent consumers, with
`pgqueuer` as the baseline (4 QueueManagers, batch size 10) against the adapter (4 clients,
batches of 10). Target: >= 1x pgqueuer. Baselines come from the ``bench`` extra
(``pip install -e '.[bench]'``). Figures are messages per second, each the median of
``--repeat`` rounds in which every contender runs once, in turn (the range follows in
brackets); a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _report import progress, refuse, require, run, verdict

import queue_runtime as qr

BODY = b'{"action":"opened","number":42}'
TEXT = BODY.decode()
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def timed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


async def timed_async(function: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await function()
    return time.perf_counter() - started


# -- SQLite baselines --------------------------------------------------------------------------


def litequeue_run(directory: Path, n: int) -> float:
    from litequeue import LiteQueue

    queue = LiteQueue(str(directory / "litequeue.db"))

    def run() -> None:
        for _ in range(n):
            queue.put(TEXT)
        for _ in range(n):
            message = queue.pop()
            assert message is not None
            queue.done(message.message_id)

    return n / timed(run)


def persist_queue_run(directory: Path, n: int) -> float:
    import persistqueue

    queue = persistqueue.SQLiteAckQueue(str(directory / "persist-queue"), multithreading=True)

    def run() -> None:
        for _ in range(n):
            queue.put(TEXT)
        for _ in range(n):
            queue.ack(queue.get())

    return n / timed(run)


# -- what SQLite itself costs -------------------------------------------------------------------


def sqlite_floor_run(directory: Path, n: int) -> float:
    """The adapter's own statements and transactions for one message at a time (send; receive,
    which locks and counts the delivery; complete), from a bare loop on one connection with
    the adapter's settings (SQLite checkpointing by itself, in the loop, where the adapter
    checkpoints in its worker thread): about what the adapter would reach if its own Python
    cost nothing."""
    import random
    import sqlite3

    from queue_runtime.adapters.sql._schema import migration_plan, version_statements
    from queue_runtime.adapters.sql._statements import Statements
    from queue_runtime.adapters.sql.sqlite import sqlite_dialect

    dialect = sqlite_dialect("qr_")
    st = Statements(dialect)
    connection = sqlite3.connect(directory / "floor.db", isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "temp_store=MEMORY"):
        connection.execute(f"PRAGMA {pragma}")
    cursor = connection.cursor()
    create, _ = version_statements(dialect)
    cursor.execute(create)
    for sql in migration_plan(dialect, None, "floor"):
        cursor.execute(sql)
    [(queue_id,)] = cursor.execute(st.insert_queue, ("q", 0, 0, 10, 30.0, None, 0)).fetchall()
    body = bytearray(BODY)
    # the insert the adapter sends for such a message (its id generated, so not indexed):
    # its NULLs written into the text
    shape = (queue_id, "", "m", 0, body, None, None, None, None, None, 0.0, 0.0, None)
    [(insert, _)] = st.runs("insert_message_seq", [shape])

    def run() -> None:
        # each a transaction of its own statement, as the adapter runs them on the loop
        for i in range(n):
            now = time.time()
            cursor.execute(insert, (queue_id, "", f"m-{i}", 0, body, now, now)).fetchall()
        for _ in range(n):
            now = time.time()
            token = random.getrandbits(62) + 1
            [row] = cursor.execute(
                st.lock_one, (token, now + 30, queue_id, "", now, now, 10, now)
            ).fetchall()
            cursor.execute(st.complete, (row[0], token, now))

    try:
        return n / timed(run)
    finally:
        connection.close()


# -- the SQLite adapter ------------------------------------------------------------------------


async def adapter_run(url: str, n: int, batch: int) -> float:
    async with qr.create_client(url) as client:
        queue = qr.QueueName(f"bench-{batch}")
        await client.create_queue(queue)

        async def run() -> None:
            if batch == 1:
                for _ in range(n):
                    await client.send_message(queue, qr.Message(BODY))
                for _ in range(n):
                    message = await client.receive_message(queue, timeout=0)
                    assert message is not None
                    await client.complete_message(message)
                return
            for _ in range(n // batch):
                await client.send_messages(queue, [qr.Message(BODY) for _ in range(batch)])
            done = 0
            while done < n:
                got = await client.receive_messages(queue, max_messages=batch, timeout=0)
                assert got
                await client.complete_messages(got)
                done += len(got)

        return n / await timed_async(run)


# -- PostgreSQL --------------------------------------------------------------------------------


async def pgqueuer_run(dsn: str, n: int, consumers: int) -> float:
    schema = f"bench_pgqueuer_{secrets.token_hex(3)}"
    os.environ["PGQUEUER_SCHEMA"] = schema
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.domain.settings import db_settings
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    db_settings.cache_clear()  # type: ignore[attr-defined]
    admin = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(admin)).install(create_schema=True)
        connections = [await asyncpg.connect(dsn) for _ in range(consumers)]
        done = 0

        async def run() -> None:
            nonlocal done
            queries = Queries(AsyncpgDriver(admin))
            for start in range(0, n, 100):
                count = min(100, n - start)
                await queries.enqueue(["bench"] * count, [BODY] * count, [0] * count)
            managers = []
            for connection in connections:
                manager = QueueManager(Queries(AsyncpgDriver(connection)))

                @manager.entrypoint("bench")
                async def handle(job: Job) -> None:
                    nonlocal done
                    done += 1

                managers.append(manager)
            await asyncio.gather(
                *(m.run(mode=QueueExecutionMode.drain, batch_size=10) for m in managers)
            )

        elapsed = await timed_async(run)
        assert done == n, f"pgqueuer handled {done} of {n}"
        for connection in connections:
            await connection.close()
        return n / elapsed
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def adapter_pg_run(dsn: str, n: int, consumers: int) -> float:
    from queue_runtime.adapters.sql.postgres import drop_schema

    schema = f"bench_qr_{secrets.token_hex(3)}"
    config = qr.QueueConfig(provider=qr.PostgresConfig(dsn=dsn, schema_name=schema))
    clients = [qr.create_client(config) for _ in range(consumers)]
    try:
        for client in clients:
            await client.open()
        queue = qr.QueueName("bench")
        await clients[0].create_queue(queue)
        done = 0

        async def consume(client: qr.QueueClient) -> None:
            nonlocal done
            while got := await client.receive_messages(queue, max_messages=10, timeout=0):
                await client.complete_messages(got)
                done += len(got)

        async def run() -> None:
            for start in range(0, n, 100):
                count = min(100, n - start)
                await clients[0].send_messages(queue, [qr.Message(BODY) for _ in range(count)])
            await asyncio.gather(*(consume(c) for c in clients))

        elapsed = await timed_async(run)
        assert done == n, f"the adapter handled {done} of {n}"
        return n / elapsed
    finally:
        for client in clients:
            await client.aclose()
        assert isinstance(config.provider, qr.PostgresConfig)
        await drop_schema(config.provider)


# -- report ------------------------------------------------------------------------------------


def median(figures: list[float]) -> float:
    return statistics.median(figures)


def spread(figures: list[float]) -> str:
    """The repetitions' range, beside the median."""
    if len(figures) < 2:
        return ""
    return f"  [{min(figures):,.0f}-{max(figures):,.0f}]"


def line(name: str, figures: list[float]) -> None:
    print(f"  {name:<34} {median(figures):>10,.0f} msg/s{spread(figures)}")


def report(name: str, figures: list[float], baseline: float, target: float) -> None:
    figure = median(figures)
    ratio = figure / baseline
    judged = verdict(ratio >= target, f"{name} >= {target:g}x")
    print(
        f"  {name:<34} {figure:>10,.0f} msg/s  {ratio:6.2f}x  (target >= {target:g}x) "
        f"{judged}{spread(figures)}"
    )


async def check_postgres(dsn: str) -> None:
    """Refuse to start unless the PostgreSQL server answers (within a bounded wait)."""
    import asyncpg

    try:
        connection = await asyncpg.connect(dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        refuse(
            f"PostgreSQL (--postgres) does not answer: {exc}; "
            "start it, name another with --postgres URL, or pass --skip-pg"
        )
    await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions of every contender (the median counts)"
    )
    parser.add_argument("--dir", help="where the SQLite files go (default: a temporary dir)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("QUEUE_RUNTIME_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
    )
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    n, repeat = args.messages, max(1, args.repeat)
    if not args.skip_pg:
        require("postgres", "asyncpg")
        await check_postgres(args.postgres)
    require("bench", "litequeue", "persistqueue", *(() if args.skip_pg else ("pgqueuer",)))
    directory = Path(tempfile.mkdtemp(prefix="bench-sql-", dir=args.dir))
    figures: dict[str, list[float]] = {}

    def add(name: str, figure: float) -> None:
        figures.setdefault(name, []).append(figure)
        os.sync()  # the next contender starts without this one's dirty pages flushing under it

    try:
        print(
            f"SQLite, {n:,} messages: put all, then get + ack all, median of {repeat} ({directory})"
        )
        for round_ in range(repeat):  # contenders take turns, each on files of its own
            here = directory / str(round_)
            here.mkdir()
            step = f"SQLite round {round_ + 1}/{repeat}, {n:,} messages:"
            progress.step(f"{step} litequeue")
            add("litequeue", litequeue_run(here, n))
            progress.step(f"{step} persist-queue")
            add("persist", persist_queue_run(here, n))
            url = f"sqlite://{here / 'queue-runtime.db'}"
            progress.step(f"{step} queue-runtime, one at a time")
            add("single", await adapter_run(url, n, 1))
            progress.step(f"{step} queue-runtime, batches of 100")
            add("batched", await adapter_run(url, n, 100))
            progress.step(f"{step} SQLite itself")
            add("floor", sqlite_floor_run(here, n))
            shutil.rmtree(here, ignore_errors=True)
        line("litequeue", figures["litequeue"])
        line("persist-queue SQLiteAckQueue", figures["persist"])
        baseline = max(median(figures["litequeue"]), median(figures["persist"]))
        floor = median(figures["floor"])
        print(
            f"  {'SQLite itself (the same statements)':<34} {floor:>10,.0f} msg/s  "
            f"{floor / baseline:6.2f}x  (one at a time without the adapter's Python)"
            f"{spread(figures['floor'])}"
        )
        report("queue-runtime sqlite, one at a time", figures["single"], baseline, 10)
        report("queue-runtime sqlite, batches of 100", figures["batched"], baseline, 50)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if not args.skip_pg:
        print(
            f"PostgreSQL, {n:,} messages: enqueue all, then dequeue + ack, 4 consumers, "
            f"median of {repeat}"
        )
        for round_ in range(repeat):
            step = f"PostgreSQL round {round_ + 1}/{repeat}, {n:,} messages:"
            progress.step(f"{step} pgqueuer")
            add("pgqueuer", await pgqueuer_run(args.postgres, n, 4))
            progress.step(f"{step} queue-runtime")
            add("pg", await adapter_pg_run(args.postgres, n, 4))
        line("pgqueuer", figures["pgqueuer"])
        report("queue-runtime postgresql", figures["pg"], median(figures["pgqueuer"]), 1)


if __name__ == "__main__":
    run(main)
