"""SQLite: one file, WAL journal; a transaction runs on the event loop only when it can
neither wait nor sync, otherwise in the client's own worker thread.

Each client owns one connection. With ``synchronous=NORMAL`` (the default) a WAL commit is a
few writes into the OS page cache, cheaper than handing the work to a thread and back, so a
transaction first tries on the loop with no busy timeout: if the write lock is free it runs
there, if another connection holds it the transaction goes to the worker thread, which waits
for it (``busy_timeout``). Checkpoints, which sync the file, only ever run in the worker, and
so do every commit under ``synchronous=FULL`` (an fsync each) and sends of big bodies. Write
transactions start ``BEGIN IMMEDIATE``: the write lock is taken first, so two consumers
(threads or processes) never pick the same message. Waiters in this process are woken right
after a commit; other processes' commits are seen by a short poll that backs off (SQLite has
no notifications). ``NORMAL`` in WAL mode keeps every committed transaction through a crash of
the process; ``FULL`` also through a power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta
from queue import SimpleQueue
from time import monotonic
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
from ._database import Database, QueueGone, WakeListener, log
from ._rules import Execute, ExecuteMany, Op, Query, Step, Wake, alone, finish_alone
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
        # Python 3.11's sqlite3 binds a bytearray directly, bytes only after a failed
        # adapter lookup
        blob_parameter=bytearray,
        rowid_seq=True,
    )


# -- wake-ups between the clients of one process ---------------------------------------------

_hub_lock = threading.Lock()
#: The listeners of each database, as a tuple replaced whole under the lock (so that an
#: announcement reads it without taking the lock).
_hub: dict[str, tuple[tuple[asyncio.AbstractEventLoop, WakeListener], ...]] = {}


def _subscribe(key: str, listener: WakeListener) -> Callable[[], None]:
    entry = (asyncio.get_running_loop(), listener)
    with _hub_lock:
        _hub[key] = (*_hub.get(key, ()), entry)

    def unsubscribe() -> None:
        with _hub_lock:
            listeners = tuple(e for e in _hub.get(key, ()) if e is not entry)
            if listeners:
                _hub[key] = listeners
            else:
                _hub.pop(key, None)

    return unsubscribe


def _announce(key: str, queues: list[str]) -> None:
    listeners = _hub.get(key)
    if not listeners:
        return
    running = asyncio.get_running_loop()
    named = queues if len(queues) == 1 else list(dict.fromkeys(queues))
    for loop, listener in listeners:
        for queue in named:
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
            tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, bool] | None
        ] = SimpleQueue()
        #: Calls submitted whose reply the loop has not yet taken: while there is one, the
        #: connection belongs to the thread.
        self.pending = 0
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, future, loop, counted = job
            try:
                result = function()
            except BaseException as exc:
                _reply(loop, self._done, future, counted, None, exc)
            else:
                _reply(loop, self._done, future, counted, result, None)

    def _done(
        self, future: asyncio.Future[Any], counted: bool, result: Any, exc: BaseException | None
    ) -> None:
        self.pending -= counted
        if future.done():  # the caller was cancelled meanwhile
            return
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)

    def submit(self, function: Callable[[], T], *, counted: bool = True) -> asyncio.Future[T]:
        """Run ``function`` in the thread; ``counted=False``: it does not use the connection
        the loop may use (it does not count in `pending`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.pending += counted
        self._jobs.put((function, future, loop, counted))
        return future

    async def call(self, function: Callable[[], T]) -> T:
        return await self.submit(function)

    def stop(self) -> None:
        """Finish the calls already queued, then end the thread."""
        self._jobs.put(None)


def _reply(loop: asyncio.AbstractEventLoop, how: Callable[..., None], *args: Any) -> None:
    # RuntimeError: the loop closed meanwhile, nobody is waiting any more
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(how, *args)


# -- tuning ------------------------------------------------------------------------------------

#: A transaction writing more bytes than this (big bodies) runs in the worker: copying them
#: into the WAL would hold the loop up for milliseconds.
INLINE_BYTES: Final = 256 * 1024
#: Longest a task's run of transactions on the loop goes without letting other tasks run (s).
YIELD_EVERY: Final = 0.002
#: Pages the WAL may hold before a checkpoint (16 MiB of 4 KiB pages; SQLite's own is 1000).
CHECKPOINT_FRAMES: Final = 4000
#: Most commits between checkpoints, however few pages each writes.
CHECKPOINT_COMMITS: Final = 1000

# -- errors ------------------------------------------------------------------------------------

_BUSY: Final = {"SQLITE_BUSY", "SQLITE_LOCKED"}
_UNUSABLE: Final = {"SQLITE_NOTADB", "SQLITE_PERM", "SQLITE_AUTH"}


def _busy(exc: sqlite3.Error) -> bool:
    """Whether another connection held a lock this one needed."""
    return getattr(exc, "sqlite_errorname", "") in _BUSY or "locked" in str(exc)


class _WouldWait(Exception):
    """The write lock was taken: the transaction goes to the worker thread, which waits.
    Nothing ran yet; ``step`` is the op's first step, already taken from it."""

    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step


def translate(exc: sqlite3.Error, where: str) -> QueueError:
    """A sqlite3 error as an error of our tree; what failed was rolled back."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = f"{where}: {exc}"
    if _busy(exc):
        return TimeoutError(f"{text} (another connection held the write lock too long)")
    if name == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return QueueGone(f"{text} (the queue was deleted meanwhile)")
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
    """One connection to a SQLite file, used on the event loop or in one worker thread (never
    both at once), and a second one for checkpoints."""

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
        self._cursor: sqlite3.Cursor | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: Transactions may run on the loop: their commits do not sync (see the module doc).
        self._inline = config.synchronous == "normal"
        self._busy_ms = max(1, round(config.busy_timeout.total_seconds() * 1000))
        self._busy_now = self._busy_ms
        #: Commits that wrote since the last checkpoint, and how many call for the next.
        self._writes = 0
        self._checkpoint_every = max(8, CHECKPOINT_FRAMES // 4)  # a one-row commit: ~4 pages
        self._changes = 0
        self._checkpointing = False
        self._checkpointer: sqlite3.Connection | None = None
        self._yield_at = 0.0

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
        await worker.call(self._disconnect)  # after any checkpoint still running
        worker.stop()

    def _disconnect(self) -> None:
        connections = (self._connection, self._checkpointer)
        self._connection = self._checkpointer = self._cursor = None
        for connection in connections:
            if connection is not None:
                connection.close()

    async def _in_thread(self, function: Callable[[], T]) -> T:
        if self._worker is None:
            raise ConfigurationError("the sqlite database is not open")
        try:
            return await self._worker.call(function)
        except sqlite3.Error as exc:
            raise translate(exc, f"sqlite database {self._path}") from exc

    def _open_connection(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._path,
            timeout=self._config.busy_timeout.total_seconds(),
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
        )

    def _connect(self) -> None:
        config = self._config
        directory = os.path.dirname(self._path)
        if not os.path.isdir(directory):
            raise ConfigurationError(f"sqlite database {self._path}: no directory {directory}")
        connection = self._open_connection()
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={config.synchronous.upper()}")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA wal_autocheckpoint=0")  # ours run in the worker
            # temporary tables (IN lists, RETURNING rows) in memory: no temporary file to set
            # up and allocate for at every statement that needs one
            connection.execute("PRAGMA temp_store=MEMORY")
            if config.max_page_count is not None:
                connection.execute(f"PRAGMA max_page_count={int(config.max_page_count)}")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._cursor = connection.cursor()  # one for every statement: none made per call

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

    async def run(self, op: Op[T], label: str, *, relaxed: bool = False, size: int = 0) -> T:
        # every commit is already as durable as `synchronous` says: relaxed changes nothing
        inline = self._inline and size <= INLINE_BYTES
        if inline and monotonic() >= self._yield_at:
            # a task whose every await runs inline would otherwise never let the loop run
            # anything else; before the transaction, so a cancel here changes nothing
            await asyncio.sleep(0)
            self._yield_at = monotonic() + YIELD_EVERY
        worker = self._worker
        if inline and worker is not None and not worker.pending:
            try:
                result, wakes = self._transaction(op, wait=False)
            except _WouldWait as busy:
                first = busy.step
                result, wakes = await self._in_thread(
                    lambda: self._transaction(op, wait=True, first=first)
                )
            except sqlite3.Error as exc:
                raise translate(exc, f"sqlite database {self._path}") from exc
        else:
            result, wakes = await self._in_thread(lambda: self._transaction(op, wait=True))
        if wakes:
            _announce(self.key, wakes)
        connection = self._connection
        if connection is not None and (changes := connection.total_changes) != self._changes:
            self._after_commit(changes)
        return result

    def _after_commit(self, changes: int) -> None:
        """Count a commit that wrote (``changes``: the connection's total since it opened);
        start a checkpoint once enough did since the last one (the connection never
        checkpoints by itself: that would sync the file on the loop)."""
        worker = self._worker
        if worker is None:
            return
        self._changes = changes
        self._writes += 1
        if self._checkpointing or self._writes < self._checkpoint_every:
            return
        self._checkpointing = True
        job = worker.submit(self._checkpoint, counted=False)
        job.add_done_callback(functools.partial(self._checkpoint_copied, self._writes))
        self._writes = 0

    def _checkpoint(self) -> int:
        """Copy the WAL into the database file and sync it, in the worker, on a connection of
        its own (so that transactions on the loop go on meanwhile); the frames in the WAL."""
        if self._connection is None:  # closing
            return 0
        if self._checkpointer is None:
            self._checkpointer = self._open_connection()
        [(_, frames, _)] = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return int(frames)

    def _checkpoint_copied(self, writes: int, future: asyncio.Future[int]) -> None:
        """The first pass ran beside our transactions; a second one, with them held back,
        copies what they wrote meanwhile, so that the WAL starts over at the next commit
        (a WAL never copied to its end grows without end). The commits between checkpoints
        follow the frames each wrote, so that the WAL stays near `CHECKPOINT_FRAMES`."""
        worker = self._worker
        if not self._checkpoint_ran(future) or worker is None:
            self._checkpointing = False
            return
        per_commit = max(1.0, future.result() / max(1, writes))
        self._checkpoint_every = int(
            min(CHECKPOINT_COMMITS, max(8, CHECKPOINT_FRAMES / per_commit))
        )
        worker.submit(self._checkpoint).add_done_callback(self._checkpoint_done)

    def _checkpoint_done(self, future: asyncio.Future[int]) -> None:
        self._checkpointing = False
        self._checkpoint_ran(future)

    def _checkpoint_ran(self, future: asyncio.Future[int]) -> bool:
        if future.cancelled():
            return False
        if (exc := future.exception()) is not None:
            # the next one catches up; a longer WAL only costs reads a little
            log.debug("sqlite checkpoint of %s failed: %s", self._path, exc)
            return False
        return True

    def _set_busy_timeout(self, connection: sqlite3.Connection, *, wait: bool) -> None:
        milliseconds = self._busy_ms if wait else 0
        if self._busy_now != milliseconds:
            connection.execute(f"PRAGMA busy_timeout={milliseconds}")
            self._busy_now = milliseconds

    def _transaction(
        self, op: Op[T], *, wait: bool, first: Step | None = None
    ) -> tuple[T, list[str]]:
        """Run ``op`` in one write transaction (``first``: its first step, if already taken).

        ``wait=False`` (on the loop): raise `_WouldWait` before anything ran if another
        connection holds the write lock; an op whose first statement is its `last` runs it
        without ``BEGIN``/``COMMIT`` (SQLite makes the one statement a transaction).
        """
        connection, cursor = self._connection, self._cursor
        if connection is None or cursor is None:
            raise ConfigurationError("the sqlite database is closed")
        execute = cursor.execute
        self._set_busy_timeout(connection, wait=wait)
        wakes: list[str] = []
        try:
            step = op.send(None) if first is None else first
        except StopIteration as stop:  # an op without statements
            return stop.value, wakes
        if not wait and alone(step):
            return self._alone(op, step)
        try:
            execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and _busy(exc):
                raise _WouldWait(step) from None
            raise
        try:
            while True:
                if type(step) is Query:
                    value: Any = execute(step.sql, step.params).fetchall()
                elif type(step) is Execute:
                    value = execute(step.sql, step.params).rowcount
                elif type(step) is ExecuteMany:
                    cursor.executemany(step.sql, step.rows)
                    value = None
                else:
                    assert isinstance(step, Wake)
                    wakes.append(step.queue)
                    value = None
                step = op.send(value)
        except StopIteration as stop:
            execute("COMMIT")
            return stop.value, wakes
        except BaseException:
            if connection.in_transaction:
                execute("ROLLBACK")
            raise

    def _alone(self, op: Op[T], step: Query | Execute) -> tuple[T, list[str]]:
        """Run the op's only statement as a transaction of its own, then the rest of the op."""
        cursor = self._cursor
        assert cursor is not None
        try:
            if type(step) is Query:
                value: Any = cursor.execute(step.sql, step.params).fetchall()
            else:
                value = cursor.execute(step.sql, step.params).rowcount
        except sqlite3.OperationalError as exc:
            if _busy(exc):  # the statement rolled back: nothing ran
                raise _WouldWait(step) from None
            raise
        return finish_alone(op, value)


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
