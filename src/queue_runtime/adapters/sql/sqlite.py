"""SQLite: one file, WAL journal, every transaction in the client's own worker thread.

Each client owns one connection, used only by one worker thread, so the event loop never
waits on the file. Write transactions start ``BEGIN IMMEDIATE``: the write lock is taken
first, so two consumers (threads or processes) never pick the same message. Waiters in this
process are woken right after a commit; other processes' commits are seen by a short poll that
backs off (SQLite has no notifications). ``synchronous=NORMAL`` (the default) in WAL mode
keeps every committed transaction through a crash of the process; ``FULL`` also through a
power loss, at the cost of an fsync per commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta
from queue import SimpleQueue
from typing import Any, Final, TypeVar

from ..._clock import Clock
from ..._errors import (
    ConfigurationError,
    ProviderError,
    QueueError,
    TimeoutError,
)
from ...config import SqliteConfig
from ._client import SqlQueueClient
from ._database import Database, WakeListener, log
from ._rules import Execute, ExecuteMany, Op, Query, Wake
from ._schema import migration_plan, version_statements
from ._statements import Dialect, Statements

__all__ = ["SqliteDatabase", "SqliteQueueClient", "sqlite_dialect"]

T = TypeVar("T")


def sqlite_dialect(table_prefix: str) -> Dialect:
    return Dialect(
        name="sqlite",
        namespace=table_prefix,
        index_prefix=table_prefix,
        numbered_placeholders=False,
        serial="INTEGER PRIMARY KEY AUTOINCREMENT",
        bigint="INTEGER",
        double="REAL",
        blob="BLOB",
        skip_locked="",
        seq_in_list="seq IN (SELECT value FROM json_each(?))",
        list_parameter=json.dumps,
    )


# -- wake-ups between the clients of one process ---------------------------------------------

_hub_lock = threading.Lock()
_hub: dict[str, list[tuple[asyncio.AbstractEventLoop, WakeListener]]] = {}


def _subscribe(key: str, listener: WakeListener) -> Callable[[], None]:
    entry = (asyncio.get_running_loop(), listener)
    with _hub_lock:
        _hub.setdefault(key, []).append(entry)

    def unsubscribe() -> None:
        with _hub_lock:
            listeners = _hub.get(key, [])
            if entry in listeners:
                listeners.remove(entry)
            if not listeners:
                _hub.pop(key, None)

    return unsubscribe


def _announce(key: str, queues: list[str]) -> None:
    with _hub_lock:
        listeners = list(_hub.get(key, ()))
    if not listeners:
        return
    running = asyncio.get_running_loop()
    for loop, listener in listeners:
        for queue in dict.fromkeys(queues):
            if loop is running:
                listener(queue)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(listener, queue)


# -- the worker thread ------------------------------------------------------------------------


class _Worker:
    """One thread running a client's SQLite calls in order; cheaper per call than an executor
    (one queue put, one ``call_soon_threadsafe``)."""

    def __init__(self, name: str) -> None:
        self._jobs: SimpleQueue[
            tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop] | None
        ] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, future, loop = job
            try:
                result = function()
            except BaseException as exc:
                _reply(loop, _fail, future, exc)
            else:
                _reply(loop, _finish, future, result)

    async def call(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((function, future, loop))
        return await future

    def stop(self) -> None:
        """Finish the calls already queued, then end the thread."""
        self._jobs.put(None)


def _reply(loop: asyncio.AbstractEventLoop, how: Callable[..., None], *args: Any) -> None:
    # RuntimeError: the loop closed meanwhile, nobody is waiting any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(how, *args)


def _finish(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# -- errors ------------------------------------------------------------------------------------

_BUSY: Final = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_UNUSABLE: Final = {"SQLITE_NOTADB", "SQLITE_PERM", "SQLITE_AUTH"}


def translate(exc: sqlite3.Error, where: str) -> QueueError:
    """A sqlite3 error as an error of our tree; what failed was rolled back."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = f"{where}: {exc}"
    if name in _BUSY or "locked" in str(exc):
        return TimeoutError(f"{text} (another connection held the write lock too long)")
    if name.startswith("SQLITE_READONLY"):
        return ConfigurationError(f"{text}: the database file or its directory is read-only")
    if name == "SQLITE_FULL":
        return ProviderError(f"{text}: nothing was written", retryable=True)
    if name.startswith("SQLITE_CANTOPEN"):
        return ConfigurationError(
            f"{text} (the file or its directory is missing, unreadable or read-only: "
            "a WAL database needs to write its -wal and -shm files beside it)"
        )
    if name in _UNUSABLE:
        return ConfigurationError(text)
    return ProviderError(text)


class SqliteDatabase(Database):
    """One connection to a SQLite file, used from one worker thread."""

    poll_interval = (0.005, 0.2)

    def __init__(self, config: SqliteConfig) -> None:
        self._config = config
        path = config.path
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's spelling) is /abs/path
            path = "/" + path.lstrip("/")
        self._path = os.path.abspath(path)
        self.key = f"sqlite:{self._path}:{config.table_prefix}"
        self._dialect = sqlite_dialect(config.table_prefix)
        self.statements = Statements(self._dialect)
        self._worker: _Worker | None = None
        self._connection: sqlite3.Connection | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def open(self, on_wake: WakeListener) -> None:
        self._worker = _Worker("queue-runtime-sqlite")
        try:
            await self._in_thread(self._connect)
        except BaseException:
            await self.close()
            raise
        self._unsubscribe = _subscribe(self.key, on_wake)
        log.debug("opened sqlite database %s", self._path)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        worker, self._worker = self._worker, None
        if worker is None:
            return
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await worker.call(connection.close)
        worker.stop()

    async def _in_thread(self, function: Callable[[], T]) -> T:
        if self._worker is None:
            raise ConfigurationError("the sqlite database is not open")
        try:
            return await self._worker.call(function)
        except sqlite3.Error as exc:
            raise translate(exc, f"sqlite database {self._path}") from exc

    def _connect(self) -> None:
        config = self._config
        directory = os.path.dirname(self._path)
        if not os.path.isdir(directory):
            raise ConfigurationError(f"sqlite database {self._path}: no directory {directory}")
        connection = sqlite3.connect(
            self._path,
            timeout=config.busy_timeout.total_seconds(),
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={config.synchronous.upper()}")
            connection.execute("PRAGMA foreign_keys=ON")
            if config.max_page_count is not None:
                connection.execute(f"PRAGMA max_page_count={int(config.max_page_count)}")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        create, read = version_statements(self._dialect)
        where = f"sqlite database {self._path}"
        try:  # a schema that is up to date needs no write lock (another writer may hold it)
            row = connection.execute(read).fetchone()
        except sqlite3.OperationalError:  # no version table yet
            row = None
        if row is not None and not migration_plan(self._dialect, int(row[0]), where):
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(create)
            row = connection.execute(read).fetchone()
            plan = migration_plan(self._dialect, None if row is None else int(row[0]), where)
            for sql in plan:
                connection.execute(sql)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if plan:
            log.debug("migrated %s (%d statements)", where, len(plan))

    async def run(self, op: Op[T], label: str, *, relaxed: bool = False) -> T:
        # every commit is already as durable as `synchronous` says: relaxed changes nothing
        result, wakes = await self._in_thread(lambda: self._transaction(op))
        if wakes:
            _announce(self.key, wakes)
        return result

    def _transaction(self, op: Op[T]) -> tuple[T, list[str]]:
        connection = self._connection
        if connection is None:
            raise ConfigurationError("the sqlite database is closed")
        execute = connection.execute
        wakes: list[str] = []
        execute("BEGIN IMMEDIATE")
        try:
            value: Any = None
            while True:
                step = op.send(value)
                if type(step) is Query:
                    value = execute(step.sql, step.params).fetchall()
                elif type(step) is Execute:
                    value = execute(step.sql, step.params).rowcount
                elif type(step) is ExecuteMany:
                    connection.executemany(step.sql, step.rows)
                    value = None
                else:
                    assert isinstance(step, Wake)
                    wakes.append(step.queue)
                    value = None
        except StopIteration as stop:
            execute("COMMIT")
            return stop.value, wakes
        except BaseException:
            if connection.in_transaction:
                execute("ROLLBACK")
            raise


class SqliteQueueClient(SqlQueueClient):
    """Queues in a SQLite file (``sqlite:///path/to/queues.db``): durable, shared by the
    processes of one host."""

    def __init__(
        self,
        config: SqliteConfig,
        *,
        default_timeout: float | timedelta = 30.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            SqliteDatabase(config),
            max_message_size=config.max_message_size,
            clock=clock,
            default_timeout=default_timeout,
        )
