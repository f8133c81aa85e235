"""PostgreSQL: asyncpg with a pool, rows picked ``FOR UPDATE SKIP LOCKED``, LISTEN/NOTIFY.

Every operation is one transaction on a pooled connection. Concurrent consumers skip the rows
another transaction is taking instead of waiting for them, so none takes the same message.
A commit that makes messages available sends ``NOTIFY`` on the schema's channel; each client
listens on one extra connection and wakes its waiters, so waiting needs no busy polling (a slow
poll still covers what no one announces: locks and schedules falling due). The adapter's tables
live in their own schema (``queue_runtime`` unless configured).

No wait is unbounded: a connection opens within ``connect_timeout``, a statement answers
within ``command_timeout`` (or its connection is closed, never pooled again, and the call
raises `TimeoutError`), and a free pooled connection is found within the sum of the two.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Final, TypeVar

from ..._clock import Clock
from ..._errors import (
    ConfigurationError,
    ConnectionError,
    ProviderError,
    QueueError,
    TimeoutError,
    ValidationError,
)
from ...config import PostgresConfig
from ._client import SqlQueueClient
from ._database import Database, QueueGone, WakeListener, log
from ._rules import Execute, ExecuteMany, Op, Query, Step, Wake, alone, finish_alone
from ._schema import migration_plan, version_statements
from ._statements import Dialect, Statements

__all__ = ["PostgresDatabase", "PostgresQueueClient", "drop_schema", "postgres_dialect"]

T = TypeVar("T")


def postgres_dialect(schema: str) -> Dialect:
    return Dialect(
        name="postgresql",
        namespace=f'"{schema}".',
        index_prefix="",
        numbered_placeholders=True,
        serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        bigint="BIGINT",
        double="DOUBLE PRECISION",
        blob="BYTEA",
        skip_locked="FOR UPDATE SKIP LOCKED",
        seq_in_list="seq = ANY(?::bigint[])",
        list_parameter=list,
        index_namespace=f'"{schema}".',
        array_insert=True,
    )


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "the postgresql adapter needs an extra: pip install 'queue-runtime[postgres]'"
        ) from exc
    return asyncpg


#: Planner settings of the adapter's connections. Every hot statement walks an index in
#: order and stops early (``ORDER BY seq LIMIT n``, a lookup by key); with the statistics of
#: a table just created and filled (a new deployment, a burst before autovacuum analysed it)
#: the planner would rather collect every row of the queue in a bitmap and sort it: the next
#: ready session took 30 ms instead of 0.06 on 20,000 messages. Without bitmap scans the plan
#: is the same with fresh, stale or no statistics (see specs/sql-adapter.md, Query plans).
PLANNER_SETTINGS: Final = {"enable_bitmapscan": "off"}
#: Longest wait for one statement of a migration: indexing a big queue takes a while.
MIGRATION_TIMEOUT: Final = 600.0
#: A statement gets this many seconds per byte it writes on top of ``command_timeout``
#: (a second a MiB): a batch of big messages over a slow link is not cut short.
_SECONDS_PER_BYTE: Final = 1.0 / (1024 * 1024)

# -- errors ------------------------------------------------------------------------------------

_AUTH: Final = ("28000", "28P01")  # invalid authorization, invalid password
_NO_DATABASE: Final = ("3D000",)
_RETRY: Final = ("40001", "40P01", "55P03", "57014")  # serialization, deadlock, lock, cancel
_BAD_DATA: Final = ("22021", "22P05", "54000")  # bad encoding, untranslatable, too large


#: What an operation whose outcome is unknown may have left behind, by label.
_MAY_HAVE: Final = {
    "receive": "it may have locked messages, delivered again when their lock lapses",
    "session receive": "it may have locked messages, delivered again when their lock lapses",
    "accept_session": "it may have leased a session, offered again when its lease lapses",
}


def translate(exc: BaseException, where: str, label: str = "") -> QueueError:
    """An asyncpg or socket error raised while a statement ran as an error of our tree; the
    transaction was rolled back (or, for a lost connection or a timeout, its outcome is
    unknown: said so, with what ``label``'s operation may have left behind)."""
    asyncpg = _asyncpg()
    if isinstance(exc, QueueError):
        return exc
    may_have = _MAY_HAVE.get(label, "the operation may have happened")
    if isinstance(exc, UnicodeError):
        return ValidationError(f"{where}: text the database cannot store ({exc})")
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError(f"{where}: no answer in time; {may_have}", outcome_unknown=True)
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return ConfigurationError(f"{where}: {exc}")
    if isinstance(exc, asyncpg.PostgresError):
        code = getattr(exc, "sqlstate", "") or ""
        text = f"{where}: {exc.__class__.__name__}: {exc}"
        if code == "23503":  # foreign_key_violation
            return QueueGone(f"{text} (the queue was deleted meanwhile)")
        if code in _AUTH:
            return ConfigurationError(f"{where}: authentication failed (check user/password)")
        if code in _NO_DATABASE:
            return ConfigurationError(text)
        if code in _BAD_DATA:
            return ValidationError(text)
        if code.startswith(("08", "57P")):
            return ConnectionError(f"{text}; {may_have}", outcome_unknown=True)
        return ProviderError(text, retryable=code in _RETRY)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError | OSError):
        return ConnectionError(f"{where}: {exc}; {may_have}", outcome_unknown=True)
    return ProviderError(f"{where}: {exc.__class__.__name__}: {exc}")


def unreachable(exc: BaseException, where: str, waited: float) -> QueueError:
    """A failure to get a connection (within ``waited`` seconds) as an error of our tree:
    nothing was sent, so its outcome is known."""
    asyncpg = _asyncpg()
    if isinstance(exc, asyncio.TimeoutError):
        return TimeoutError(
            f"{where}: no connection within {waited:g} s (the database does not answer, or "
            "every pooled connection stayed busy); nothing was sent"
        )
    if isinstance(exc, ValueError | OverflowError):  # the driver's reading of the DSN
        return ConfigurationError(f"{where}: the DSN's settings are not usable")
    if isinstance(exc, OSError | asyncpg.InterfaceError) and not isinstance(
        exc, asyncpg.ClientConfigurationError
    ):
        return ConnectionError(f"{where}: {exc}; nothing was sent")
    return translate(exc, where)


async def _keep_session(connection: Any) -> None:
    """A pooled connection needs no reset between operations: they set no session state
    (no SET, LISTEN or advisory locks outside a transaction) and end their transactions."""


def _sound(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` is in a known state: our rules refused, or
    the server answered with an error. After anything else (a timeout, a cancellation, a lost
    connection) it is closed, never pooled again: a late answer or a pending cancel request
    would meet the next operation."""
    if isinstance(exc, QueueError):
        return True
    asyncpg = _asyncpg()
    return isinstance(exc, asyncpg.PostgresError) and not (
        isinstance(exc, asyncpg.PostgresConnectionError)
        or (getattr(exc, "sqlstate", "") or "").startswith(("08", "57P"))
    )


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresDatabase(Database):
    """A pool of connections to one PostgreSQL database, and one listening connection."""

    poll_interval = (0.02, 0.5)

    def __init__(self, config: PostgresConfig) -> None:
        self._config = config
        self._dsn = config.dsn.get_secret_value()
        self._connect_timeout = config.connect_timeout.total_seconds()
        self._command_timeout = config.command_timeout.total_seconds()
        #: A connection held by a stuck statement is closed within command_timeout, and a
        #: new one opens within connect_timeout.
        self._acquire_timeout = self._command_timeout + self._connect_timeout
        schema = config.schema_name
        self._schema = schema
        self._dialect = postgres_dialect(schema)
        self.statements = Statements(self._dialect)
        self._where = f"postgresql schema {schema!r}"
        self.key = f"postgresql:{_public_location(self._dsn)}:{schema}"
        self._channel = f"queue_runtime_{schema}"[:63]
        self._notify = "SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q"
        self._pool: Any = None
        #: Connections whose commits do not wait for the WAL flush (receives, settlements).
        self._relaxed: Any = None
        self._listener: Any = None
        self._relisten: asyncio.Task[None] | None = None
        self._on_wake: WakeListener | None = None
        #: Names the client's connections in ``pg_stat_activity``.
        self._application = f"queue-runtime {schema}"[:63]

    async def open(self, on_wake: WakeListener) -> None:
        try:
            self._pool = await self._create_pool({})
            connection = await self._acquire(self._pool, self._where)
            try:
                await self._migrate(connection)
            except BaseException as exc:
                _drop_unsound(connection, exc)
                raise
            finally:
                await self._release(self._pool, connection)
            self._relaxed = await self._create_pool({"synchronous_commit": "off"})
            self._on_wake = on_wake
            await self._listen()
        except BaseException as exc:
            await self.close()
            if isinstance(exc, Exception):
                raise translate(exc, self._where) from exc
            raise
        log.debug("opened %s", self._where)

    async def _listen(self) -> None:
        """Open the listening connection; when the server drops it, `_relisten` replaces it
        (meanwhile waiters see others' commits by their pause)."""
        try:
            listener = await _asyncpg().connect(
                self._dsn,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                server_settings={"application_name": self._application},
            )
        except Exception as exc:
            raise unreachable(exc, self._where, self._connect_timeout) from exc
        try:
            await listener.add_listener(self._channel, self._heard)
        except BaseException:
            listener.terminate()
            raise
        listener.add_termination_listener(self._lost_listener)
        self._listener = listener

    def _lost_listener(self, connection: Any) -> None:
        if self._listener is connection and self._on_wake is not None:
            self._listener = None
            log.debug("%s: listening connection lost, reconnecting", self._where)
            self._relisten = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        pause = 0.1
        while self._on_wake is not None and self._listener is None:
            try:
                await self._listen()
            except Exception as exc:  # the server may still be down: try again later
                log.debug("%s: reconnecting the listener failed: %s", self._where, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            else:
                self._on_wake("")  # commits may have been missed: every waiter looks again

    async def _create_pool(self, settings: dict[str, str]) -> Any:
        """A pool whose connections open within connect_timeout and whose statements (BEGIN,
        COMMIT and the driver's own included) answer within command_timeout. The server ends a
        transaction left idle as long (its client gave up on it, perhaps behind a partition),
        so it does not keep the rows it locked from other clients."""
        idle_ms = max(1, round(self._command_timeout * 1000))
        try:
            return await _asyncpg().create_pool(
                self._dsn,
                min_size=self._config.min_pool_size,
                max_size=self._config.max_pool_size,
                timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                reset=_keep_session,
                server_settings={
                    "application_name": self._application,
                    "idle_in_transaction_session_timeout": str(idle_ms),
                    **PLANNER_SETTINGS,
                    **settings,
                },
            )
        except Exception as exc:
            raise unreachable(exc, self._where, self._connect_timeout) from exc

    async def _acquire(self, pool: Any, where: str) -> Any:
        """A pooled connection, or `TimeoutError`/`ConnectionError` saying nothing was sent."""
        try:
            return await pool.acquire(timeout=self._acquire_timeout)
        except Exception as exc:
            raise unreachable(exc, where, self._acquire_timeout) from exc

    async def _release(self, pool: Any, connection: Any) -> None:
        """Give ``connection`` back (nothing to do if it was closed); a failure to reset it
        closes it, which the operation that used it need not hear about."""
        try:
            await pool.release(connection)
        except Exception as exc:
            log.debug("%s: a connection was closed instead of pooled again: %s", self._where, exc)

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        if self._on_wake is not None:
            self._on_wake(payload)

    async def _migrate(self, connection: Any) -> None:
        create, read = version_statements(self._dialect)
        wait = MIGRATION_TIMEOUT
        async with connection.transaction():
            # one migrator at a time per schema, whichever process gets there first
            lock = "SELECT pg_advisory_xact_lock(hashtext($1))"
            await connection.execute(lock, self._schema, timeout=wait)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"', timeout=wait)
            await connection.execute(create, timeout=wait)
            found = await connection.fetchval(read, timeout=wait)
            plan = migration_plan(self._dialect, found, self._where)
            for sql in plan:
                await connection.execute(sql, timeout=wait)
        if plan:
            log.debug("migrated %s (%d statements)", self._where, len(plan))

    async def close(self) -> None:
        self._on_wake = None
        if self._relisten is not None:
            self._relisten.cancel()
            self._relisten = None
        listener, self._listener = self._listener, None
        pools = [self._pool, self._relaxed]
        self._pool = self._relaxed = None
        if listener is not None:
            try:
                await listener.close(timeout=self._command_timeout)
            except Exception:  # the connection is going away either way
                listener.terminate()
        for pool in pools:
            if pool is not None:
                try:  # waits for connections in use, then says goodbye on each
                    await asyncio.wait_for(pool.close(), self._command_timeout)
                except Exception:
                    pool.terminate()

    async def run(self, op: Op[T], label: str, *, relaxed: bool = False, size: int = 0) -> T:
        pool = self._relaxed if relaxed else self._pool
        if pool is None:
            raise ConfigurationError(f"{self._where} is not open")
        try:
            step = op.send(None)  # the op's own checks, before any round trip
        except StopIteration as stop:  # an op without statements
            result: T = stop.value
            return result
        where = f"{self._where} ({label})"
        connection = await self._acquire(pool, where)
        timeout = self._command_timeout + size * _SECONDS_PER_BYTE
        try:
            if alone(step):
                # the op's only statement: its own transaction, one round trip
                return await self._alone(connection, op, step, timeout)
            return await self._transaction(connection, op, step, timeout)
        except BaseException as exc:
            _drop_unsound(connection, exc)
            if isinstance(exc, QueueError) or not isinstance(exc, Exception):
                raise
            raise translate(exc, where, label) from exc
        finally:
            await self._release(pool, connection)

    async def _transaction(self, connection: Any, op: Op[T], step: Step, timeout: float) -> T:
        """Run ``op`` from ``step`` in a transaction: committed if the op returns, rolled back
        if our rules or the server refused it. After any other failure the caller closes the
        connection, and the server rolls back what it holds (no ROLLBACK to wait for); this
        closes it only where the caller would not (see `_sound`)."""
        transaction = connection.transaction()
        try:
            await transaction.start()
        except BaseException as exc:  # a connection whose BEGIN failed is not trusted again
            if _sound(exc):  # (else the caller closes it)
                connection.terminate()
            raise
        try:
            result = await self._drive(connection, op, step, timeout)
        except BaseException as exc:
            if _sound(exc):
                try:
                    await transaction.rollback()
                except Exception:  # the server rolls back when the connection goes
                    connection.terminate()
            raise
        await transaction.commit()
        return result

    async def _drive(self, connection: Any, op: Op[T], step: Step, timeout: float) -> T:
        """Run ``op`` from its first ``step`` on; its wake-ups are notified in its
        transaction, so they are delivered only if it commits."""
        wakes: list[str] = []
        while True:
            if type(step) is Query:
                value: Any = await connection.fetch(step.sql, *step.params, timeout=timeout)
            elif type(step) is Execute:
                status = await connection.execute(step.sql, *step.params, timeout=timeout)
                value = _rowcount(status)
            elif type(step) is ExecuteMany:
                await connection.executemany(step.sql, step.rows, timeout=timeout)
                value = None
            else:
                assert isinstance(step, Wake)
                wakes.append(step.queue)
                value = None
            try:
                step = op.send(value)
            except StopIteration as stop:
                await self._announce(connection, wakes, timeout)
                result: T = stop.value
                return result

    async def _alone(self, connection: Any, op: Op[T], step: Query | Execute, timeout: float) -> T:
        """Run the op's only statement without a transaction around it (PostgreSQL commits
        it by itself), then the rest of the op: wake-ups, notified after the commit."""
        if type(step) is Query:
            value: Any = await connection.fetch(step.sql, *step.params, timeout=timeout)
        else:
            status = await connection.execute(step.sql, *step.params, timeout=timeout)
            value = _rowcount(status)
        result, wakes = finish_alone(op, value)
        await self._announce(connection, wakes, timeout)
        return result

    async def _announce(self, connection: Any, wakes: list[str], timeout: float) -> None:
        if wakes:
            queues = list(set(wakes))
            await connection.execute(self._notify, self._channel, queues, timeout=timeout)


def _drop_unsound(connection: Any, exc: BaseException) -> None:
    """Close ``connection`` unless ``exc`` left it in a known state (see `_sound`)."""
    if not _sound(exc):
        connection.terminate()


async def drop_schema(config: PostgresConfig) -> None:
    """Delete the adapter's schema with every queue and message in it (for tests, uninstall)."""
    asyncpg = _asyncpg()
    where = f"postgresql schema {config.schema_name!r}"
    connect_timeout = config.connect_timeout.total_seconds()
    try:
        connection = await asyncpg.connect(
            config.dsn.get_secret_value(),
            timeout=connect_timeout,
            command_timeout=MIGRATION_TIMEOUT,
        )
    except Exception as exc:
        raise unreachable(exc, where, connect_timeout) from exc
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{config.schema_name}" CASCADE')
    except Exception as exc:
        raise translate(exc, where) from exc
    finally:
        try:
            await connection.close(timeout=config.command_timeout.total_seconds())
        except Exception:
            connection.terminate()


def _public_location(dsn: str) -> str:
    """The DSN without credentials (it names the store in receipts and logs): its hosts
    (several in a libpq multi-host DSN), ports and database."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    return f"{parts.netloc.rpartition('@')[2].lower()}{parts.path}"


class PostgresQueueClient(SqlQueueClient):
    """Queues in a PostgreSQL database (``postgresql://user@host/db``): durable, shared by
    every process and host that reaches the database."""

    def __init__(
        self,
        config: PostgresConfig,
        *,
        default_timeout: float | timedelta = 30.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            PostgresDatabase(config),
            max_message_size=config.max_message_size,
            clock=clock,
            default_timeout=default_timeout,
        )
