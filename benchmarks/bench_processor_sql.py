"""The Processor on PostgreSQL and SQLite end to end, against pgqueuer and procrastinate.

    python benchmarks/bench_processor_sql.py [--messages 20000] [--repeat 3] [--sessions 100]
                                             [--postgres URL] [--dir DIR] [--skip-pg]

As users run them: N messages of 200 bytes are enqueued first (by this process, in batches of
100, as a producer would), then a worker in a process of its own (this file, run again with
a hidden ``--consume``: the producer shares neither its event loop nor its GIL) drains them
with a no-op async handler at concurrency 10:

- queue-runtime: ``qr.Processor(client, queue, handler, max_concurrency=10)``, and on a session
  queue (the messages spread evenly over ``--sessions`` session ids)
  ``max_concurrent_sessions=10``; everything else at its default;
- pgqueuer: one ``QueueManager`` on one asyncpg connection in drain mode, twice: uncapped (its
  default: ``batch_size=10`` and no ``max_concurrent_tasks``, so it may pick every job at
  once) and capped at 10 in flight (``max_concurrent_tasks=10``, which needs ``batch_size=5``);
  its tables in the schema named by ``PGQUEUER_SCHEMA``;
- procrastinate: ``run_worker_async(concurrency=10, wait=False)`` with an ``async`` task, on
  psycopg's compiled implementation, its pool allowed 11 connections (its 10 jobs and its
  LISTEN; its default pool of 4 would cap it below concurrency 10), its tables found through
  ``search_path``, finished jobs kept (its default ``delete_jobs="never"``).

A figure is N / the time from the consumer's start (its connections already open: the
Processor's ``start``, ``QueueManager.run``, ``run_worker_async``, each with its own start-up
queries) until its handler has run N times. The worker reports that time; its stop and the
settlements still in flight at that moment are not timed, but before the figure counts the
worker must have stopped with the handler run exactly N times and nothing left to do.
Every contender runs on a fresh schema of the same database (created, filled, drained,
dropped), every round runs each contender once in turn, and a figure is the median of
``--repeat`` rounds with their range in brackets.

Targets, each a ratio in the same run: the Processor >= 2x pgqueuer uncapped, and with
sessions >= 1.5x; the Processor's drain on a fresh schema within 1.2x the time of the same
drain on a schema whose tables were ``ANALYZE``d after filling (with and without sessions);
the adapter's ``send_messages`` in batches of 100 >= 1x pgqueuer's ``Queries.enqueue`` with
lists of 100. The same drains on a SQLite file (``--dir``) are printed for information.
Baselines come from the ``bench`` extra (``pip install -e '.[bench]'``); a missed target
prints MISS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from _report import Failed, progress, require, run, verdict
from bench_sql import DEFAULT_POSTGRES, check_postgres, spread

import queue_runtime as qr


def body(number: int) -> bytes:
    """200 bytes of JSON, as a small webhook event might be; each message its own (the same
    bytes in every row would let a batch bind them once, which real events do not allow)."""
    return (b'{"action":"opened","number":%d,"pad":"' % number + b"x" * 200)[:198] + b'"}'


BODY = body(0)
QUEUE = "bench"
CONCURRENCY = 10
BATCH = 100  # what the producer sends at a time
_TICK = 1.0  # how often a worker says how far it is
_STOP = 2.0  # seconds the Processor gets to stop once everything is settled


@dataclass(frozen=True)
class Contender:
    """One way of draining the queue: who, on what, and how its worker is set up."""

    key: str
    label: str
    kind: str  # "qr", "pgqueuer" or "procrastinate"
    sessions: int = 0
    analysed: bool = False
    cap: int | None = None  # pgqueuer's max_concurrent_tasks
    batch: int = 10  # pgqueuer's batch_size
    sqlite: bool = False


def contenders(sessions: int, postgres: bool) -> list[Contender]:
    with_sessions = f"{sessions} sessions"
    sqlite = [
        Contender("sqlite", "Processor on SQLite", "qr", sqlite=True),
        Contender("sqlite-s", f"Processor on SQLite, {with_sessions}", "qr", sessions, sqlite=True),
    ]
    if not postgres:
        return sqlite
    return [
        Contender("pgq", "pgqueuer uncapped (its default)", "pgqueuer"),
        Contender("pgq-10", "pgqueuer, at most 10 in flight", "pgqueuer", cap=10, batch=5),
        Contender("proc", "procrastinate", "procrastinate"),
        Contender("qr", "Processor", "qr"),
        Contender("qr-s", f"Processor, {with_sessions}", "qr", sessions),
        Contender("qr-a", "Processor, analysed schema", "qr", analysed=True),
        Contender("qr-s-a", f"Processor, {with_sessions}, analysed", "qr", sessions, True),
        *sqlite,
    ]


def messages(n: int, sessions: int) -> list[qr.Message]:
    """N messages, spread evenly over ``sessions`` session ids (none without)."""
    return [
        qr.Message(body(i), session_id=f"s{i % sessions}" if sessions else None) for i in range(n)
    ]


def with_schema(dsn: str, schema: str) -> str:
    """The adapter's URL for ``dsn`` with its tables in ``schema``."""
    parts = urlsplit(dsn)
    query = "&".join(filter(None, [parts.query, urlencode({"schema_name": schema})]))
    return urlunsplit(parts._replace(query=query))


async def timed(function: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await function()
    return time.perf_counter() - started


# -- the producer's side: a fresh schema, filled, and checked after the drain -------------------


@dataclass
class Prepared:
    """A queue filled for one contender: how long the filling took, what its worker needs,
    and how to check and drop it afterwards."""

    enqueue: float
    worker: dict[str, Any]
    check: Callable[[], Awaitable[None]]
    drop: Callable[[], Awaitable[None]]


async def connect(dsn: str) -> Any:
    import asyncpg

    return await asyncpg.connect(dsn, timeout=30, command_timeout=120)


async def analyse(dsn: str, schema: str) -> None:
    """``ANALYZE`` every table of ``schema``."""
    admin = await connect(dsn)
    try:
        for row in await admin.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
        ):
            await admin.execute(f'ANALYZE "{schema}"."{row["tablename"]}"')
    finally:
        await admin.close()


async def drop_schema(dsn: str, schema: str) -> None:
    admin = await connect(dsn)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()


def sqlite_file(directory: Path, key: str) -> tuple[str, Callable[[], None]]:
    """A fresh SQLite file's URL, and what removes it (with its WAL) afterwards."""
    here = directory / f"{key}-{secrets.token_hex(3)}"
    here.mkdir()
    return f"sqlite://{here / 'queue-runtime.db'}", functools.partial(shutil.rmtree, here)


async def prepare_qr(contender: Contender, n: int, dsn: str, directory: Path) -> Prepared:
    if contender.sqlite:
        url, remove = sqlite_file(directory, contender.key)

        async def drop() -> None:
            remove()

    else:
        schema = f"bench_qr_{secrets.token_hex(3)}"
        url = with_schema(dsn, schema)

        async def drop() -> None:
            await drop_schema(dsn, schema)

    batch = messages(n, contender.sessions)
    try:
        # the producer's client is closed before the worker starts, so it cannot steal work
        async with qr.create_client(url) as client:
            await client.create_queue(QUEUE, requires_session=bool(contender.sessions))

            async def send() -> None:
                for start in range(0, n, BATCH):
                    await client.send_messages(QUEUE, batch[start : start + BATCH])

            enqueue = await timed(send)
        if contender.analysed:
            await analyse(dsn, schema)
    except BaseException:
        await drop()
        raise

    async def check() -> None:
        async with qr.create_client(url) as client:
            stats = await client.get_queue_statistics(QUEUE)
        if stats.total != 0 or stats.dead_letter != 0:
            raise Failed(f"{contender.label}: the queue is not empty after the drain: {stats}")

    return Prepared(enqueue, {"url": url}, check, drop)


@contextlib.contextmanager
def pgqueuer_schema(schema: str) -> Iterator[Any]:
    """pgqueuer's settings (read from the environment, then cached) naming ``schema``."""
    from pgqueuer.domain.settings import db_settings

    os.environ["PGQUEUER_SCHEMA"] = schema
    db_settings.cache_clear()  # type: ignore[attr-defined]
    try:
        yield db_settings()
    finally:
        del os.environ["PGQUEUER_SCHEMA"]
        db_settings.cache_clear()  # type: ignore[attr-defined]


async def prepare_pgqueuer(contender: Contender, n: int, dsn: str, directory: Path) -> Prepared:
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    schema = f"bench_pgqueuer_{secrets.token_hex(3)}"
    with pgqueuer_schema(schema) as settings:
        table = f'"{schema}".{settings.queue_table}'
        admin = await connect(dsn)
        try:
            queries = Queries(AsyncpgDriver(admin))
            await queries.install(create_schema=True)

            async def send() -> None:
                for start in range(0, n, BATCH):
                    count = min(BATCH, n - start)
                    payloads = [body(i) for i in range(start, start + count)]
                    await queries.enqueue([QUEUE] * count, payloads, [0] * count)

            enqueue = await timed(send)
        except BaseException:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            raise
        finally:
            await admin.close()

    async def check() -> None:
        admin = await connect(dsn)
        try:
            left = await admin.fetchval(f"SELECT count(*) FROM {table}")
        finally:
            await admin.close()
        if left:
            raise Failed(f"{contender.label}: {left} jobs left after the drain")

    async def drop() -> None:
        await drop_schema(dsn, schema)

    return Prepared(enqueue, {"dsn": dsn, "schema": schema}, check, drop)


def procrastinate_app(dsn: str, schema: str) -> Any:
    """An app whose connections keep procrastinate's tables and functions in ``schema``."""
    import procrastinate

    # its warning that a worker importing tasks by name will not find this module's: ours
    # defines its task in the worker itself
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    connector = procrastinate.PsycopgConnector(
        conninfo=dsn,
        kwargs={"options": f"-c search_path={schema}"},
        min_size=1,
        max_size=CONCURRENCY + 1,
    )
    return procrastinate.App(connector=connector)


async def prepare_procrastinate(
    contender: Contender, n: int, dsn: str, directory: Path
) -> Prepared:
    schema = f"bench_procrastinate_{secrets.token_hex(3)}"
    admin = await connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    try:
        app = procrastinate_app(dsn, schema)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            task = app.configure_task(QUEUE, queue=QUEUE)

            async def send() -> None:
                for start in range(0, n, BATCH):
                    stop = min(start + BATCH, n)
                    await task.batch_defer_async(
                        *({"body": body(i).decode()} for i in range(start, stop))
                    )

            enqueue = await timed(send)
    except BaseException:
        await drop_schema(dsn, schema)
        raise

    async def check() -> None:
        admin = await connect(dsn)
        try:
            left = await admin.fetchval(
                f"SELECT count(*) FROM \"{schema}\".procrastinate_jobs WHERE status <> 'succeeded'"
            )
        finally:
            await admin.close()
        if left:
            raise Failed(f"{contender.label}: {left} jobs not succeeded after the drain")

    async def drop() -> None:
        await drop_schema(dsn, schema)

    return Prepared(enqueue, {"dsn": dsn, "schema": schema}, check, drop)


PREPARE = {"qr": prepare_qr, "pgqueuer": prepare_pgqueuer, "procrastinate": prepare_procrastinate}


async def drain(contender: Contender, n: int, prepared: Prepared) -> float:
    """Run the contender's worker process over the filled queue: the seconds it reports."""
    order = {**dataclasses.asdict(contender), **prepared.worker, "messages": n}
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--consume",
        json.dumps(order),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert worker.stdout is not None
    deadline = time.monotonic() + 120 + n / 20  # generous: 20 msg/s would be a broken worker
    report: dict[str, Any] = {}
    try:
        while line := await asyncio.wait_for(
            worker.stdout.readline(), max(0.0, deadline - time.monotonic())
        ):
            report = json.loads(line)
            progress.done = report["handled"]
        await asyncio.wait_for(worker.wait(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        worker.kill()
        await worker.wait()
        raise Failed(f"{contender.label}: the worker did not finish within its deadline") from None
    if worker.returncode != 0 or "seconds" not in report:
        raise Failed(f"{contender.label}: the worker exited with status {worker.returncode}")
    if report["handled"] != n:
        raise Failed(f"{contender.label}: the worker handled {report['handled']} of {n}")
    return float(report["seconds"])


# -- the worker's side: a process of its own -----------------------------------------------------


class Tally:
    """The no-op handler's count, and when the N-th call came."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.finished = 0.0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count == self.total:
            self.finished = time.perf_counter()
            self.done.set()


def say(**report: object) -> None:
    print(json.dumps(report), flush=True)


@contextlib.asynccontextmanager
async def ticking(tally: Tally) -> AsyncIterator[None]:
    """Tell the benchmark how far the worker is, every `_TICK` seconds."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(_TICK)
            say(handled=tally.count)

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()


async def consume_qr(order: dict[str, Any], tally: Tally) -> float:
    async def handle(message: qr.ReceivedMessage) -> None:
        tally.hit()

    async with qr.create_client(order["url"]) as client:
        processor = qr.Processor(
            client,
            QUEUE,
            handle,
            max_concurrency=CONCURRENCY,
            max_concurrent_sessions=CONCURRENCY,
        )
        started = time.perf_counter()
        await processor.start()
        try:
            await tally.done.wait()
            # once every message is settled, nothing a stop waits for can be lost: it gets a
            # moment to end idle workers, not the default 30 s (what is not settled within a
            # minute is left to the benchmark's check of the queue)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    while processor.counters.completed < tally.total:  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
        finally:
            await processor.stop(timeout=_STOP)
    return started


async def consume_pgqueuer(order: dict[str, Any], tally: Tally) -> float:
    os.environ["PGQUEUER_SCHEMA"] = order["schema"]
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    manager = QueueManager(Queries(AsyncpgDriver(await connect(order["dsn"]))))

    @manager.entrypoint(QUEUE)
    async def handle(job: Job) -> None:
        tally.hit()

    started = time.perf_counter()
    await manager.run(
        mode=QueueExecutionMode.drain, batch_size=order["batch"], max_concurrent_tasks=order["cap"]
    )
    return started


async def consume_procrastinate(order: dict[str, Any], tally: Tally) -> float:
    app = procrastinate_app(order["dsn"], order["schema"])

    @app.task(name=QUEUE, queue=QUEUE)
    async def handle(body: str) -> None:
        tally.hit()

    async with app.open_async():
        started = time.perf_counter()
        await app.run_worker_async(
            queues=[QUEUE], concurrency=CONCURRENCY, wait=False, install_signal_handlers=False
        )
    return started


async def consume(order: dict[str, Any]) -> None:
    """The worker: drain the queue, then say how long the N handler calls took."""
    tally = Tally(order["messages"])
    consumer = {"qr": consume_qr, "pgqueuer": consume_pgqueuer}.get(
        order["kind"], consume_procrastinate
    )
    async with ticking(tally):
        started = await consumer(order, tally)
    if not tally.done.is_set():
        raise Failed(f"the worker stopped after {tally.count} of {tally.total} messages")
    say(handled=tally.count, seconds=tally.finished - started)


# -- report ------------------------------------------------------------------------------------


def rate(n: int, seconds: list[float]) -> list[float]:
    return [n / s for s in seconds]


WIDTH = 44


def line(name: str, figures: list[float], tail: str = "") -> None:
    figure = statistics.median(figures)
    print(f"  {name:<{WIDTH}} {figure:>9,.0f} msg/s{tail}{spread(figures)}")


def against(
    name: str, figures: list[float], baseline: list[float], target: float, what: str
) -> None:
    ratio = statistics.median(figures) / statistics.median(baseline)
    judged = verdict(ratio >= target, f"{name} >= {target:g}x {what}")
    line(name, figures, f"  {ratio:5.2f}x  (target >= {target:g}x) {judged}")


def fresh_against_analysed(name: str, fresh: list[float], analysed: list[float]) -> None:
    """The median drain time on a fresh schema over the one on an analysed schema."""
    ratio = statistics.median(fresh) / statistics.median(analysed)
    judged = verdict(ratio <= 1.2, f"{name}: fresh / analysed time <= 1.2x")
    label = "... time on a fresh / on an analysed schema"
    print(f"  {label:<{WIDTH}} {ratio:>9.2f}x      (target <= 1.2x) {judged}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of every contender (the median counts)"
    )
    parser.add_argument("--sessions", type=int, default=100, help="session ids to spread over")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("QUEUE_RUNTIME_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
    )
    parser.add_argument("--dir", help="where the SQLite files go (default: a temporary dir)")
    parser.add_argument("--skip-pg", action="store_true", help="SQLite only")
    parser.add_argument("--consume", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        await consume(json.loads(args.consume))
        return
    n, repeat, sessions = max(1, args.messages), max(1, args.repeat), max(1, args.sessions)
    postgres = not args.skip_pg
    if postgres:
        require("postgres", "asyncpg")
        await check_postgres(args.postgres)
        require("bench", "pgqueuer", "procrastinate")
    everyone = contenders(sessions, postgres)
    drained: dict[str, list[float]] = {c.key: [] for c in everyone}
    enqueued: dict[str, list[float]] = {c.key: [] for c in everyone}
    directory = Path(tempfile.mkdtemp(prefix="bench-processor-sql-", dir=args.dir))
    try:
        for round_ in range(repeat):  # every contender once a round, in turn
            for contender in everyone:
                step = f"round {round_ + 1}/{repeat}, {n:,} messages: {contender.label}"
                progress.step(f"{step}, enqueue")
                prepared = await PREPARE[contender.kind](contender, n, args.postgres, directory)
                try:
                    progress.step(f"{step}, drain", total=n)
                    drained[contender.key].append(await drain(contender, n, prepared))
                    await prepared.check()
                finally:
                    await prepared.drop()
                enqueued[contender.key].append(prepared.enqueue)
                os.sync()  # the next one starts without this one's dirty pages flushing under it
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(
        f"{n:,} messages of {len(BODY)} bytes enqueued first, then drained by a worker process "
        f"at concurrency {CONCURRENCY}; median of {repeat}"
    )
    if postgres:
        d = {key: rate(n, seconds) for key, seconds in drained.items()}
        pgq = d["pgq"]
        print("PostgreSQL, drain, each on a fresh schema; ratios to pgqueuer uncapped")
        line("pgqueuer uncapped (its default)", pgq)
        line("pgqueuer, at most 10 in flight", d["pgq-10"])
        line("procrastinate", d["proc"])
        against("Processor", d["qr"], pgq, 2, "pgqueuer uncapped")
        against(f"Processor, {sessions} sessions", d["qr-s"], pgq, 1.5, "pgqueuer uncapped")
        print("PostgreSQL, the Processor's drain on a schema analysed after filling")
        line("Processor", d["qr-a"])
        fresh_against_analysed("Processor", drained["qr"], drained["qr-a"])
        line(f"Processor, {sessions} sessions", d["qr-s-a"])
        fresh_against_analysed(
            f"Processor, {sessions} sessions", drained["qr-s"], drained["qr-s-a"]
        )
        e = {key: rate(n, seconds) for key, seconds in enqueued.items()}
        print(f"PostgreSQL, enqueue in batches of {BATCH}; ratio to pgqueuer")
        line("pgqueuer Queries.enqueue", e["pgq"])
        line("procrastinate batch_defer_async", e["proc"])
        against("send_messages", e["qr"], e["pgq"], 1, "pgqueuer Queries.enqueue")
        line(f"send_messages, {sessions} sessions", e["qr-s"])
    print(f"SQLite, for information: drain; enqueue in batches of {BATCH}")
    line("Processor", rate(n, drained["sqlite"]))
    line(f"Processor, {sessions} sessions", rate(n, drained["sqlite-s"]))
    line("send_messages", rate(n, enqueued["sqlite"]))
    line(f"send_messages, {sessions} sessions", rate(n, enqueued["sqlite-s"]))


if __name__ == "__main__":
    run(main)
