"""PostgreSQL: asyncpg with a pool, rows picked ``FOR UPDATE SKIP LOCKED``, LISTEN/NOTIFY.

Every operation is one transaction on a pooled connection. Concurrent consumers skip the rows
another transaction is taking instead of waiting for them, so none takes the same message.
A commit that makes messages available sends ``NOTIFY`` on the schema's channel; each client
listens on one extra connection and wakes its waiters, so waiting needs no busy polling (a slow
poll still covers what no one announces: locks and schedules falling due). The adapter's tables
live in their own schema (``queue_runtime`` unless configured).
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
    )


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            "the postgresql adapter needs an extra: pip install 'queue-runtime[postgres]'"
        ) from exc
    return asyncpg


# -- errors ------------------------------------------------------------------------------------

_AUTH: Final = ("28000", "28P01")  # invalid authorization, invalid password
_NO_DATABASE: Final = ("3D000",)
_RETRY: Final = ("40001", "40P01", "55P03", "57014")  # serialization, deadlock, lock, cancel
_BAD_DATA: Final = ("22021", "22P05", "54000")  # bad encoding, untranslatable, too large


def translate(exc: BaseException, where: str) -> QueueError:
    """An asyncpg or socket error as an error of our tree; the transaction was rolled back
    (or, for a lost connection, its outcome is unknown: said so in the message)."""
    asyncpg = _asyncpg()
    if isinstance(exc, QueueError):
        return exc
    if isinstance(exc, UnicodeError):
        return ValidationError(f"{where}: text the database cannot store ({exc})")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return TimeoutError(
            f"{where}: no answer in time; the operation may have happened", outcome_unknown=True
        )
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
            return ConnectionError(f"{text}; the operation may have happened", outcome_unknown=True)
        return ProviderError(text, retryable=code in _RETRY)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError | OSError):
        return ConnectionError(
            f"{where}: {exc}; the operation may have happened", outcome_unknown=True
        )
    return ProviderError(f"{where}: {exc.__class__.__name__}: {exc}")


async def _keep_session(connection: Any) -> None:
    """A pooled connection needs no reset between operations: they set no session state
    (no SET, LISTEN or advisory locks outside a transaction) and end their transactions."""


def _broken(exc: BaseException) -> bool:
    """Whether ``exc`` leaves its connection unusable (lost, or in a state asyncpg gave up on)."""
    asyncpg = _asyncpg()
    return isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.PostgresConnectionError
        | OSError,
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
            async with self._pool.acquire() as connection:
                await self._migrate(connection)
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
        listener = await _asyncpg().connect(
            self._dsn,
            timeout=self._config.connect_timeout.total_seconds(),
            server_settings={"application_name": self._application},
        )
        await listener.add_listener(self._channel, self._heard)
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
        return await _asyncpg().create_pool(
            self._dsn,
            min_size=self._config.min_pool_size,
            max_size=self._config.max_pool_size,
            timeout=self._config.connect_timeout.total_seconds(),
            command_timeout=None,
            reset=_keep_session,
            server_settings={"application_name": self._application, **settings},
        )

    def _heard(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        if self._on_wake is not None:
            self._on_wake(payload)

    async def _migrate(self, connection: Any) -> None:
        create, read = version_statements(self._dialect)
        async with connection.transaction():
            # one migrator at a time per schema, whichever process gets there first
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._schema)
            await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await connection.execute(create)
            found = await connection.fetchval(read)
            plan = migration_plan(self._dialect, found, self._where)
            for sql in plan:
                await connection.execute(sql)
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
                await listener.close(timeout=5)
            except Exception:  # the connection is going away either way
                listener.terminate()
        for pool in pools:
            if pool is not None:
                try:
                    await pool.close()
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
        try:
            async with pool.acquire() as connection:
                try:
                    if alone(step):
                        # the op's only statement: its own transaction, one round trip
                        return await self._alone(connection, op, step)
                    async with connection.transaction():
                        return await self._drive(connection, op, step)
                except QueueError:
                    raise
                except Exception as exc:
                    if _broken(exc):  # the pool must not hand this connection out again
                        connection.terminate()
                    raise
        except QueueError:
            raise
        except Exception as exc:
            raise translate(exc, f"{self._where} ({label})") from exc

    async def _drive(self, connection: Any, op: Op[T], step: Step) -> T:
        """Run ``op`` from its first ``step`` on; its wake-ups are notified in its
        transaction, so they are delivered only if it commits."""
        wakes: list[str] = []
        while True:
            if type(step) is Query:
                value: Any = await connection.fetch(step.sql, *step.params)
            elif type(step) is Execute:
                value = _rowcount(await connection.execute(step.sql, *step.params))
            elif type(step) is ExecuteMany:
                await connection.executemany(step.sql, step.rows)
                value = None
            else:
                assert isinstance(step, Wake)
                wakes.append(step.queue)
                value = None
            try:
                step = op.send(value)
            except StopIteration as stop:
                await self._announce(connection, wakes)
                result: T = stop.value
                return result

    async def _alone(self, connection: Any, op: Op[T], step: Query | Execute) -> T:
        """Run the op's only statement without a transaction around it (PostgreSQL commits
        it by itself), then the rest of the op: wake-ups, notified after the commit."""
        if type(step) is Query:
            value: Any = await connection.fetch(step.sql, *step.params)
        else:
            value = _rowcount(await connection.execute(step.sql, *step.params))
        result, wakes = finish_alone(op, value)
        await self._announce(connection, wakes)
        return result

    async def _announce(self, connection: Any, wakes: list[str]) -> None:
        if wakes:
            await connection.execute(self._notify, self._channel, list(set(wakes)))


async def drop_schema(config: PostgresConfig) -> None:
    """Delete the adapter's schema with every queue and message in it (for tests, uninstall)."""
    asyncpg = _asyncpg()
    try:
        connection = await asyncpg.connect(
            config.dsn.get_secret_value(), timeout=config.connect_timeout.total_seconds()
        )
    except Exception as exc:
        raise translate(exc, f"postgresql schema {config.schema_name!r}") from exc
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{config.schema_name}" CASCADE')
    finally:
        await connection.close()


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
