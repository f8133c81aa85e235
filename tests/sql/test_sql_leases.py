"""A session lease is never handed out spent: an accept that waited (for another transaction's
lock, for a connection) renews the lease before returning it when less than half is left.

Real waits on both databases (a row lock held by another PostgreSQL transaction, SQLite's write
lock held by another connection), with a manual clock moved on while the accept waits, so the
lease's remaining time is known exactly.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest

import queue_runtime as qr

pytestmark = pytest.mark.asyncio

LOCK = 3.0


@asynccontextmanager
async def _writes_held(config: qr.SqliteConfig | qr.PostgresConfig) -> AsyncIterator[None]:
    """Another connection holds what an accept must write to (until the block ends)."""
    if isinstance(config, qr.SqliteConfig):
        other = sqlite3.connect(config.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other = await asyncpg.connect(config.dsn.get_secret_value())
    try:
        async with other.transaction():
            await other.execute(f'LOCK TABLE "{config.schema_name}".sessions IN EXCLUSIVE MODE')
            yield
    finally:
        await other.close()


async def test_a_lease_taken_after_a_long_wait_is_renewed_before_it_is_handed_out(
    make_client: Callable[..., qr.QueueClient], sql_config: qr.SqliteConfig | qr.PostgresConfig
) -> None:
    clock = qr.ManualClock()
    async with make_client(clock=clock) as client:
        await client.create_queue("q", requires_session=True, lock_duration=LOCK)
        await client.send_message("q", qr.Message(b"m", session_id="s"))
        for session_id in ("s", None):  # a named accept and a next-available one
            async with _writes_held(sql_config):
                accepting = asyncio.ensure_future(
                    client.accept_session("q", session_id, timeout=30)
                )
                await asyncio.sleep(0.5)  # it read the clock and waits for the lock
                assert not accepting.done()
                clock.advance(LOCK - 0.5)  # the wait took most of the lease
            session = await asyncio.wait_for(accepting, 30)
            assert session is not None
            assert session.locked_until.timestamp() - clock.now() == pytest.approx(LOCK)
            await session.close()
