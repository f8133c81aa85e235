"""The SQL adapters beyond the contract: configuration and URLs, durability across clients,
duplicate detection by message id, the schema's namespace and version, logging, and waking a
waiting receive from another process."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from sql_helpers import store_url

import queue_runtime as qr
from queue_runtime.adapters.sql import SCHEMA_VERSION
from queue_runtime.adapters.sql import _rules as rules
from queue_runtime.adapters.sql._sent import SENT
from queue_runtime.adapters.sql.postgres import PostgresQueueClient
from queue_runtime.adapters.sql.sqlite import SqliteQueueClient

WORKER = str(Path(__file__).with_name("sql_worker.py"))


# -- configuration ---------------------------------------------------------------------------


def test_sqlite_urls() -> None:
    absolute = qr.QueueConfig.from_url("sqlite:///var/lib/app/queues.db?synchronous=full")
    assert absolute.provider == qr.SqliteConfig(path="/var/lib/app/queues.db", synchronous="full")
    relative = qr.QueueConfig.from_url("sqlite://queues.db")
    assert isinstance(relative.provider, qr.SqliteConfig)
    assert relative.provider.path == "queues.db"
    client = qr.create_client("sqlite:///tmp/x/queues.db")
    assert isinstance(client, SqliteQueueClient)
    # four slashes (SQLAlchemy's absolute form) name the same file
    assert repr(qr.create_client("sqlite:////tmp/x/queues.db")) == repr(client)


def test_postgres_urls_keep_the_password_secret() -> None:
    for scheme in ("postgresql", "postgres"):
        url = f"{scheme}://app:s3cret@db.internal:6432/jobs?schema_name=q1&sslmode=require"
        config = qr.QueueConfig.from_url(url).provider
        assert isinstance(config, qr.PostgresConfig)
        assert config.schema_name == "q1"
        assert config.dsn.get_secret_value() == (
            "postgresql://app:s3cret@db.internal:6432/jobs?sslmode=require"
        )
        assert "s3cret" not in repr(config)
        client = qr.create_client(url)
        assert isinstance(client, PostgresQueueClient)
        assert "s3cret" not in repr(client)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///q.db?synchronous=off",
        "sqlite:///q.db?table_prefix=drop table",
        "sqlite:///q.db?max_page_count=0",
        "postgresql://h/db?schema_name=1bad",
        "postgresql://h/db?min_pool_size=5&max_pool_size=2",
    ],
)
def test_bad_sql_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(qr.ConfigurationError):
        qr.create_client(url)


@pytest.mark.asyncio
async def test_capabilities_are_honest(sql_client: qr.QueueClient) -> None:
    capabilities = sql_client.capabilities
    assert capabilities.durable
    assert capabilities.exclusive_sessions_across_processes
    assert set(capabilities) >= {"sessions", "session_state", "peek", "statistics"}


# -- durability, duplicates, namespace ---------------------------------------------------------


@pytest.mark.asyncio
async def test_messages_sessions_and_state_outlive_the_client(
    make_client: Callable[..., qr.QueueClient],
) -> None:
    async with make_client() as client:
        await client.create_queue("plain")
        await client.create_queue("orders", requires_session=True)
        await client.send_message("plain", qr.Message(b"p"))
        await client.send_messages("orders", [qr.Message(b"o1", session_id="s")])
        async with await client.accept_session("orders", "s") as session:
            await session.set_state(b"step-1")
    async with make_client() as client:
        got = await client.receive_message("plain", timeout=0)
        assert got is not None and got.body == b"p"
        async with await client.accept_session("orders", "s") as session:
            assert await session.get_state() == b"step-1"
            message = await session.receive_message(timeout=0)
            assert message is not None and message.body == b"o1"


@pytest.mark.asyncio
async def test_a_message_id_still_in_the_queue_is_stored_once(sql_client: qr.QueueClient) -> None:
    await sql_client.create_queue("q")
    message = qr.Message(b"once", message_id="order-17")
    await sql_client.send_message("q", message)
    await sql_client.send_message("q", message)  # a retry after an unknown outcome
    ids = await sql_client.send_messages("q", [message, qr.Message(b"other", message_id="o-18")])
    assert ids == ["order-17", "o-18"]
    got = await sql_client.receive_messages("q", max_messages=10, timeout=0)
    assert [m.body for m in got] == [b"once", b"other"]
    await sql_client.dead_letter_message(got[0])
    await sql_client.send_message("q", message)  # no longer in the queue: a new message
    again = await sql_client.receive_message("q", timeout=0)
    assert again is not None and (again.body, again.delivery_count) == (b"once", 1)


@pytest.mark.asyncio
async def test_a_generated_id_re_sent_by_this_process_is_stored_once(
    make_client: Callable[..., qr.QueueClient],
) -> None:
    """A generated id is left out of the unique index; the process that made it still
    recognises a re-send of it, by any of its clients, alone or in a batch, in a session."""
    plain, in_session = qr.Message(b"p"), qr.Message(b"s", session_id="s1")
    async with make_client() as client, make_client() as other:
        await client.create_queue("q")
        await client.create_queue("sq", requires_session=True)
        for sender in (client, other):
            await sender.send_message("q", plain)
            await sender.send_messages("q", [plain, plain._replace(body=b"copy")])
            await sender.send_message("sq", in_session)
            await sender.send_messages("sq", [in_session, in_session])
        await client.send_message("q", qr.Message(b"fresh"))
        got = await client.receive_messages("q", max_messages=10, timeout=0)
        assert [m.body for m in got] == [b"p", b"fresh"]
        async with await client.accept_session("sq", "s1") as session:
            assert [m.body for m in await session.receive_messages(timeout=0)] == [b"s"]
        await client.complete_messages(got)
        await other.send_message("q", plain)  # no longer in the queue: a new message
        again = await client.receive_message("q", timeout=0)
        assert again is not None and again.body == b"p" and again.delivery_count == 1


@pytest.mark.asyncio
async def test_a_generated_id_sent_long_ago_is_still_recognised(
    make_client: Callable[..., qr.QueueClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the record's capacity the oldest ids are forgotten; a re-send of one (or of any
    id no newer) is looked for in the whole queue."""
    monkeypatch.setattr(SENT, "_capacity", 2)
    early = qr.Message(b"made first, sent last")
    old = qr.Message(b"old")
    async with make_client() as client:
        await client.create_queue("q")
        await client.send_message("q", old)
        for n in range(3):
            await client.send_message("q", qr.Message(b"%d" % n))
        await client.send_message("q", old)  # forgotten by now
        await client.send_message("q", old)
        await client.send_message("q", early)  # never sent, but no newer than a forgotten id
        got = await client.receive_messages("q", max_messages=10, timeout=0)
    assert [m.body for m in got] == [b"old", b"0", b"1", b"2", b"made first, sent last"]


@pytest.mark.asyncio
async def test_sequence_numbers_are_never_handed_out_again(
    make_client: Callable[..., qr.QueueClient],
) -> None:
    """However the newest message goes (completed alone or in a batch, expired, its queue
    deleted), and across clients, the next one gets a higher number."""
    clock = qr.ManualClock()
    seen: list[int] = []

    async def newest(client: qr.QueueClient, queue: str) -> qr.ReceivedMessage:
        await client.send_message(queue, qr.Message(b"m"))
        got = await client.receive_messages(queue, max_messages=10, timeout=0)
        assert got and got[-1].sequence_number > max(seen, default=0)
        seen.append(got[-1].sequence_number)
        return got[-1]

    async with make_client(clock=clock) as client:
        await client.create_queue("q")
        await client.complete_message(await newest(client, "q"))
        await client.complete_messages([await newest(client, "q")])
        await client.create_queue("ttl", default_message_ttl=timedelta(seconds=5))
        await client.abandon_message(await newest(client, "ttl"))
        clock.advance(timedelta(seconds=10))
        assert await client.receive_message("ttl", timeout=0) is None  # expired: deleted
        await newest(client, "q")
        await client.delete_queue("q")
        await client.create_queue("q")
    async with make_client(clock=clock) as client:
        await client.complete_message(await newest(client, "q"))
        await newest(client, "q")


@pytest.mark.asyncio
async def test_only_ids_the_user_gave_are_in_the_unique_index(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with SqliteQueueClient(qr.SqliteConfig(path=str(path))) as client:
        await client.create_queue("q")
        await client.send_messages("q", [qr.Message(b"g"), qr.Message(b"u", message_id="u-1")])
        await client.send_message("q", qr.Message(b"g1"))
    with sqlite3.connect(path) as raw:
        rows = raw.execute("SELECT body, unique_id FROM qr_messages ORDER BY seq").fetchall()
    assert rows == [(b"g", 0), (b"u", 1), (b"g1", 0)]


@pytest.mark.asyncio
async def test_a_send_after_another_client_replaced_the_queue_follows_the_new_one(
    make_client: Callable[..., qr.QueueClient],
) -> None:
    """A client remembers a queue's row between sends; a queue deleted (and created again
    with other settings) by another client is read again, and nothing is stored twice."""
    async with make_client() as sender, make_client() as admin:
        await admin.create_queue("q")
        await sender.send_message("q", qr.Message(b"first"))
        await admin.delete_queue("q")
        with pytest.raises(qr.QueueNotFound):
            await sender.send_message("q", qr.Message(b"lost queue"))
        await admin.create_queue("q")
        await sender.send_messages("q", [qr.Message(b"a"), qr.Message(b"b")])
        await admin.delete_queue("q")
        await admin.create_queue("q", requires_session=True)
        with pytest.raises(qr.ValidationError):  # the new queue's rules, not the old one's
            await sender.send_message("q", qr.Message(b"no session"))
        await sender.send_message("q", qr.Message(b"s", session_id="s1"))
        async with await admin.accept_session("q", timeout=0) as session:
            got = await session.receive_messages(max_messages=10, timeout=0)
            assert [m.body for m in got] == [b"s"]


@pytest.mark.asyncio
async def test_the_schema_is_versioned_in_its_own_namespace(
    dialect: str, make_client: Callable[..., qr.QueueClient], sql_config: object
) -> None:
    async with make_client() as client:
        await client.create_queue("q")
    if isinstance(sql_config, qr.SqliteConfig):
        with sqlite3.connect(sql_config.path) as raw:
            tables = {
                r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            version = raw.execute("SELECT version FROM qr_schema_version").fetchone()[0]
        assert {"qr_queues", "qr_messages", "qr_sessions", "qr_schema_version"} <= tables
        assert all(t.startswith(("qr_", "sqlite_")) for t in tables)
    else:
        assert isinstance(sql_config, qr.PostgresConfig)
        raw = await asyncpg.connect(sql_config.dsn.get_secret_value())
        try:
            rows = await raw.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                sql_config.schema_name,
            )
            version = await raw.fetchval(
                f'SELECT version FROM "{sql_config.schema_name}".schema_version'
            )
        finally:
            await raw.close()
        assert {r[0] for r in rows} == {"queues", "messages", "sessions", "schema_version"}
    assert version == SCHEMA_VERSION


@pytest.mark.asyncio
async def test_two_table_prefixes_in_one_file_are_independent(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    one = SqliteQueueClient(qr.SqliteConfig(path=path, table_prefix="app1_"))
    two = SqliteQueueClient(qr.SqliteConfig(path=path, table_prefix="app2_"))
    async with one, two:
        await one.create_queue("q")
        await two.create_queue("q")
        await one.send_message("q", qr.Message(b"for one"))
        assert await two.receive_message("q", timeout=0) is None
        got = await one.receive_message("q", timeout=0)
        assert got is not None
        with pytest.raises(qr.ValidationError):
            await two.complete_message(got)  # not this store's message


# -- logging and waking ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_debug_logging_names_ids_never_bodies(
    sql_client: qr.QueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    await sql_client.create_queue("q")
    with caplog.at_level(logging.DEBUG, logger="queue_runtime.adapters.sql"):
        await sql_client.send_message("q", qr.Message(b"top-secret-body", message_id="m-1"))
        got = await sql_client.receive_message("q", timeout=0)
        assert got is not None
        await sql_client.complete_message(got)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "m-1" in text and "top-secret-body" not in text
    assert {r.name for r in caplog.records} == {"queue_runtime.adapters.sql"}


@pytest.mark.asyncio
async def test_a_waiting_receive_wakes_for_another_process(
    make_client: Callable[..., qr.QueueClient], sql_config: qr.SqliteConfig | qr.PostgresConfig
) -> None:
    async with make_client() as client:
        await client.create_queue("q")
        waiting = asyncio.create_task(client.receive_message("q", timeout=30))
        await asyncio.sleep(0.1)
        producer = await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            "produce",
            store_url(sql_config),
            "q",
            "1",
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            got = await waiting
        finally:
            producer.kill()
            await producer.wait()
        assert got is not None and got.body == b"0:0"


@pytest.mark.asyncio
async def test_a_session_receive_outlives_a_renewal_made_while_it_waits(
    sql_client: qr.QueueClient,
) -> None:
    await sql_client.create_queue("s", requires_session=True, lock_duration=1)
    session = await sql_client.accept_session("s", "a")
    assert session is not None
    async with session:
        waiting = asyncio.create_task(session.receive_message(timeout=3))
        await asyncio.sleep(0.6)
        await session.renew_session_lock()
        await asyncio.sleep(0.6)  # past the first lease, within the renewed one
        await sql_client.send_message("s", qr.Message(b"late", session_id="a"))
        got = await waiting
        assert got is not None and got.body == b"late"


@pytest.mark.asyncio
async def test_statistics_count_what_the_queue_holds(sql_client: qr.QueueClient) -> None:
    from datetime import UTC, datetime, timedelta

    await sql_client.create_queue("plain")
    await sql_client.create_queue("orders", requires_session=True)
    later = datetime.now(UTC) + timedelta(hours=1)
    await sql_client.send_messages(
        "plain",
        [qr.Message(b"a"), qr.Message(b"b"), qr.Message(b"c", scheduled_enqueue_time=later)],
    )
    got = await sql_client.receive_message("plain", timeout=0)
    assert got is not None
    await sql_client.dead_letter_message(got, reason="bad")
    locked = await sql_client.receive_message("plain", timeout=0)
    assert locked is not None
    plain = await sql_client.get_queue_statistics("plain")
    assert (plain.active, plain.locked, plain.scheduled, plain.dead_letter) == (0, 1, 1, 1)
    await sql_client.send_messages(
        "orders", [qr.Message(b"1", session_id="s1"), qr.Message(b"2", session_id="s2")]
    )
    async with await sql_client.accept_session("orders", "s1") as session:
        await session.set_state(b"x")
        orders = await sql_client.get_queue_statistics("orders")
        assert (orders.active, orders.sessions, orders.locked_sessions) == (2, 2, 1)


# -- ops of one statement ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_op_that_runs_a_statement_after_its_last_is_refused(
    sql_client: qr.QueueClient,
) -> None:
    def broken() -> rules.Op[None]:
        yield rules.Query("SELECT 1", (), True)
        yield rules.Query("SELECT 2", ())

    await sql_client.create_queue("q")
    # a bug in the rules, not bad input: the first statement committed by itself
    with pytest.raises(qr.ProviderError, match=r"after the last one.*committed by itself"):
        await sql_client._db.run(broken(), "broken")  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_postgres_runs_an_op_of_one_statement_without_a_transaction(
    postgres_config: qr.PostgresConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One round trip instead of three (``BEGIN``, the statement, ``COMMIT``); a batch still
    runs in one transaction, and a send's wake-up still reaches a waiting receiver."""
    opened = 0
    transaction = asyncpg.connection.Connection.transaction

    def counted(self: asyncpg.Connection, *args: object, **kwargs: object) -> object:
        nonlocal opened
        opened += 1
        return transaction(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncpg.connection.Connection, "transaction", counted)
    async with (
        PostgresQueueClient(postgres_config, default_timeout=5) as client,
        PostgresQueueClient(postgres_config, default_timeout=5) as other,
    ):
        await client.create_queue("q")
        await client.send_message("q", qr.Message(b"first"))
        assert await client.receive_message("q", timeout=0) is not None  # reads and sweeps
        opened = 0
        await client.send_message("q", qr.Message(b"x"))
        got = await client.receive_message("q", timeout=0)
        assert got is not None and got.body == b"x"
        await client.complete_message(got)
        assert opened == 0
        await client.send_messages("q", [qr.Message(b"y"), qr.Message(b"z")])
        assert opened == 1
        await client.complete_messages(await client.receive_messages("q", timeout=0))
        waiting = asyncio.create_task(other.receive_message("q", timeout=5))
        await asyncio.sleep(0.2)  # parked on the queue's channel
        await client.send_message("q", qr.Message(b"woken"))
        woken = await asyncio.wait_for(waiting, 2)  # by the NOTIFY after the commit
        assert woken is not None and woken.body == b"woken"


@pytest.mark.asyncio
async def test_a_batch_of_unlike_messages_keeps_every_field_and_the_order(
    sql_client: qr.QueueClient,
) -> None:
    """A batch is one statement over columns on PostgreSQL: columns alike in every row, NULL
    in every row, and different in each, in every mix, come back as sent."""
    await sql_client.create_queue("q", default_message_ttl=3600)
    later = datetime.now(UTC) + timedelta(hours=1)
    batches = [
        [qr.Message(b"same") for _ in range(3)],
        [
            qr.Message(b"a", attributes={"k": "v"}, correlation_id="c1"),
            qr.Message(b"b", time_to_live=timedelta(seconds=600)),
            qr.Message(b"c", message_id="given-1", attributes={"x": "1", "y": "2"}),
            qr.Message(b"d", scheduled_enqueue_time=later),
        ],
    ]
    for batch in batches:
        await sql_client.send_messages("q", batch)
    got = await sql_client.receive_messages("q", max_messages=10, timeout=0)
    sent = [m for batch in batches for m in batch if m.scheduled_enqueue_time is None]
    assert [(m.body, m.message_id, m.attributes, m.correlation_id) for m in got] == [
        (m.body, m.message_id, m.attributes, m.correlation_id) for m in sent
    ]
    assert got[4].time_to_live == timedelta(seconds=600) and got[3].time_to_live is None
    assert (await sql_client.get_queue_statistics("q")).scheduled == 1  # "d", for later
    await sql_client.complete_messages(got)
