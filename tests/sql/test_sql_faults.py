"""Faults of the store: each is a typed error of our tree, and nothing is lost.

PostgreSQL unreachable, refused logins, a read-only SQLite file (opened by an unprivileged
process: root ignores file modes), a full disk (``max_page_count``), a schema written by a newer
release, a file that is not a database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from sql_helpers import postgres_url

import queue_runtime as qr
from queue_runtime.adapters.sql import SCHEMA_VERSION, SchemaVersionError
from queue_runtime.adapters.sql.postgres import PostgresQueueClient, translate
from queue_runtime.adapters.sql.sqlite import SqliteQueueClient

pytestmark = pytest.mark.asyncio


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- PostgreSQL ----------------------------------------------------------------------------


async def test_an_unreachable_server_is_a_connection_error() -> None:
    config = qr.PostgresConfig(dsn=f"postgresql://postgres@127.0.0.1:{_free_port()}/test")
    client = PostgresQueueClient(config)
    with pytest.raises(qr.ConnectionError) as caught:
        await client.open()
    assert caught.value.retryable


async def test_a_refused_login_is_a_configuration_error(
    postgres_config: qr.PostgresConfig,
) -> None:
    role = f"qr_nologin_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(postgres_url())
    try:
        await admin.execute(f"CREATE ROLE {role} NOLOGIN")
        base = postgres_url().replace("postgres@", f"{role}:not-the-password@", 1)
        for dsn in (base, postgres_url().replace("postgres@", "no_such_role@", 1)):
            client = PostgresQueueClient(qr.PostgresConfig(dsn=dsn))
            with pytest.raises(qr.ConfigurationError) as caught:
                await client.open()
            assert "not-the-password" not in str(caught.value)
    finally:
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def test_a_missing_database_is_a_configuration_error() -> None:
    dsn = postgres_url().rsplit("/", 1)[0] + "/no_such_database_qr"
    with pytest.raises(qr.ConfigurationError):
        await PostgresQueueClient(qr.PostgresConfig(dsn=dsn)).open()


async def test_a_wrong_password_maps_to_configuration_error_without_the_secret() -> None:
    # the test server trusts every local login, so the server's answer is built here
    error = translate(asyncpg.InvalidPasswordError("password authentication failed"), "pg")
    assert isinstance(error, qr.ConfigurationError)
    assert not error.retryable
    assert "authentication failed" in str(error)


# -- SQLite ---------------------------------------------------------------------------------


async def _filled(config: qr.SqliteConfig, bodies: list[bytes]) -> None:
    async with SqliteQueueClient(config) as client:
        await client.create_queue("q")
        await client.send_messages("q", [qr.Message(b) for b in bodies])


async def _bodies(config: qr.SqliteConfig) -> list[bytes]:
    async with SqliteQueueClient(config) as client:
        return [m.body for m in await client.peek_messages("q", max_messages=1000)]


def _immutable(paths: list[Path], on: bool) -> bool:
    """``chattr +i`` (even root cannot write then); False where the file system refuses."""
    flag = "+i" if on else "-i"
    result = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return result.returncode == 0


async def test_a_read_only_file_is_a_typed_error_and_keeps_its_messages(tmp_path: Path) -> None:
    directory = tmp_path / "frozen"
    directory.mkdir()
    config = qr.SqliteConfig(path=str(directory / "queues.db"))
    await _filled(config, [b"a", b"b"])
    frozen = [directory / name for name in os.listdir(directory)] + [directory]
    if not _immutable(frozen, True):
        pytest.skip("chattr +i is not available here")
    try:
        client = SqliteQueueClient(config)
        with pytest.raises(qr.ConfigurationError) as caught:
            await client.open()
        await client.aclose()
        assert "read-only" in str(caught.value)
    finally:
        _immutable(frozen, False)
    assert await _bodies(config) == [b"a", b"b"]


async def _send_until_full(client: qr.QueueClient, stored: list[bytes]) -> None:
    for i in range(1000):
        body = f"{i:04}".encode() + b"x" * 8000
        await client.send_message("q", qr.Message(body))
        stored.append(body)


async def test_a_full_disk_is_a_typed_error_and_loses_nothing(tmp_path: Path) -> None:
    config = qr.SqliteConfig(path=str(tmp_path / "small.db"), max_page_count=64)
    stored: list[bytes] = []
    async with SqliteQueueClient(config) as client:
        await client.create_queue("q")
        with pytest.raises(qr.ProviderError) as caught:
            await _send_until_full(client, stored)
        assert "full" in str(caught.value)
        # a batch that does not fit is not stored in part
        with pytest.raises(qr.ProviderError):
            await client.send_messages("q", [qr.Message(b"y" * 8000) for _ in range(20)])
    assert stored, "the file filled up before the first message"
    roomy = qr.SqliteConfig(path=config.path)
    assert await _bodies(roomy) == stored


async def test_a_schema_from_a_newer_release_is_refused(
    make_client: Callable[..., qr.QueueClient], sql_config: qr.SqliteConfig | qr.PostgresConfig
) -> None:
    async with make_client() as client:
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"kept"))
    await _set_version(sql_config, 99)
    with pytest.raises(SchemaVersionError) as caught:
        await make_client().open()
    assert isinstance(caught.value, qr.ConfigurationError)
    assert "99" in str(caught.value)
    await _set_version(sql_config, SCHEMA_VERSION)
    async with make_client() as client:
        got = await client.receive_message("q", timeout=0)
        assert got is not None and got.body == b"kept"


async def _set_version(config: qr.SqliteConfig | qr.PostgresConfig, version: int) -> None:
    if isinstance(config, qr.SqliteConfig):
        with sqlite3.connect(config.path) as raw:
            raw.execute(f"UPDATE {config.table_prefix}schema_version SET version = ?", (version,))
        return
    raw = await asyncpg.connect(config.dsn.get_secret_value())
    try:
        await raw.execute(f'UPDATE "{config.schema_name}".schema_version SET version = {version}')
    finally:
        await raw.close()


async def test_a_file_that_is_not_a_database_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the pages you are looking for\n" * 100)
    with pytest.raises(qr.ConfigurationError):
        await SqliteQueueClient(qr.SqliteConfig(path=str(path))).open()
    assert path.read_bytes().startswith(b"these are not")


async def test_a_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    config = qr.SqliteConfig(path=str(tmp_path / "nowhere" / "queues.db"))
    with pytest.raises(qr.ConfigurationError):
        await SqliteQueueClient(config).open()


async def _receive_retrying(client: qr.QueueClient, queue: str) -> qr.ReceivedMessage | None:
    """A receive retried while it meets connections the server dropped (typed, retryable)."""
    errors: list[qr.ConnectionError] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30  # one error per dropped connection the pool still holds
    while loop.time() < deadline:
        try:
            return await client.receive_message(queue, timeout=0)
        except qr.ConnectionError as exc:
            errors.append(exc)
            await asyncio.sleep(0.1)
    raise AssertionError(f"the client never reconnected: {errors[-3:]}")


async def test_connections_the_server_drops_are_replaced(
    postgres_config: qr.PostgresConfig,
) -> None:
    async with (
        PostgresQueueClient(postgres_config, default_timeout=5) as client,
        PostgresQueueClient(postgres_config, default_timeout=5) as other,
    ):
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"before"))
        admin = await asyncpg.connect(postgres_url())
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1 AND pid <> pg_backend_pid()",
                f"queue-runtime {postgres_config.schema_name}",
            )
        finally:
            await admin.close()
        assert killed >= 3  # pools and listeners of both clients
        got = await _receive_retrying(client, "q")
        assert got is not None and got.body == b"before"
        await client.complete_message(got)
        # the listener is back: a waiting receive hears another client's send
        waiting = asyncio.create_task(client.receive_message("q", timeout=10))
        await asyncio.sleep(0.5)
        await other.send_message("q", qr.Message(b"after"))
        later = await waiting
        assert later is not None and later.body == b"after"


async def test_a_writer_holding_the_lock_too_long_is_a_timeout(tmp_path: Path) -> None:
    config = qr.SqliteConfig(path=str(tmp_path / "busy.db"), busy_timeout=0.2)
    await _filled(config, [b"a"])
    blocker = sqlite3.connect(config.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    try:
        async with SqliteQueueClient(config) as client:
            with pytest.raises(qr.TimeoutError) as caught:
                await client.send_message("q", qr.Message(b"b"))
            assert caught.value.retryable and not caught.value.outcome_unknown
            blocker.execute("ROLLBACK")
            await client.send_message("q", qr.Message(b"c"))
    finally:
        blocker.close()
    assert await _bodies(config) == [b"a", b"c"]


async def test_a_schema_from_an_older_release_is_migrated_with_its_messages(
    tmp_path: Path,
) -> None:
    from queue_runtime.adapters.sql._schema import _MIGRATIONS
    from queue_runtime.adapters.sql.sqlite import sqlite_dialect

    path = tmp_path / "old.db"
    dialect = dataclasses.replace(sqlite_dialect("qr_"), rowid_seq=False)  # AUTOINCREMENT
    with sqlite3.connect(path) as raw:  # what release 1 left behind
        raw.execute("CREATE TABLE qr_schema_version (version INTEGER NOT NULL)")
        for sql in _MIGRATIONS[0]:
            raw.execute(dialect.render(sql))
        raw.execute("INSERT INTO qr_schema_version VALUES (1)")
        raw.execute(
            "INSERT INTO qr_queues (name, is_dead_letter, requires_session, max_delivery_count,"
            " lock_duration, dead_letter_on_expiration) VALUES ('q', 0, 0, 10, 30, 0)"
        )
        raw.execute(
            "INSERT INTO qr_messages (queue_id, partition_key, message_id, body, enqueued_at,"
            " visible_at) VALUES (1, '', 'old-1', x'6f6c64', 0, 0)"
        )
    async with SqliteQueueClient(qr.SqliteConfig(path=str(path))) as client:
        # its id still held unique: a re-send of the old message is recognised
        await client.send_message("q", qr.Message(b"again", message_id="old-1"))
        got = await client.receive_messages("q", max_messages=10, timeout=0)
        assert [(m.message_id, m.body) for m in got] == [("old-1", b"old")]
        await client.complete_messages(got)  # the newest row: its number is not used again
        await client.send_message("q", qr.Message(b"new"))
        new = await client.receive_message("q", timeout=0)
        assert new is not None and new.sequence_number > got[0].sequence_number
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version FROM qr_schema_version").fetchone() == (3,)
        indexes = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type='index'"))
    assert {"qr_messages_order", "qr_messages_sessions_order"} <= set(indexes)
    assert "unique_id = 1" in indexes["qr_messages_dedup"]
