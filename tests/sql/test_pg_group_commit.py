"""Group commit on PostgreSQL: completions that several tasks make at about the same moment go
to the database as one statement, and each caller still learns its own outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import queue_runtime as qr
from queue_runtime.adapters.sql import _rules as rules
from queue_runtime.adapters.sql.postgres import PostgresQueueClient

pytestmark = pytest.mark.asyncio


@pytest.fixture
def gathered(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The message ids of each batch completed as one statement (the real statement runs; this
    only notes what went into it)."""
    batches: list[list[str]] = []
    real = rules.complete_each

    def noting(st: Any, receipts: Any, now: float) -> Any:
        batches.append([r.message_id for r in receipts])
        return real(st, receipts, now)

    monkeypatch.setattr(rules, "complete_each", noting)
    return batches


async def test_a_gathered_batch_with_one_lock_lost_settles_the_others_and_reports_that_one(
    postgres_config: qr.PostgresConfig, gathered: list[list[str]]
) -> None:
    clock = qr.ManualClock()
    async with PostgresQueueClient(postgres_config, clock=clock, default_timeout=5) as client:
        await client.create_queue("q", lock_duration=10)
        await client.send_messages("q", [qr.Message(b"%d" % n) for n in range(4)])
        lapsed = await client.receive_message("q", timeout=0)
        clock.advance(6)
        rest = [await client.receive_message("q", timeout=0) for _ in range(3)]
        clock.advance(5)  # the first one's lock lapses (the others hold 5 s more)
        assert lapsed is not None and all(m is not None for m in rest)
        first, *others = [m for m in rest if m is not None]
        # ready together, they go as one statement, the lapsed one among them
        outcomes = await asyncio.gather(
            client.complete_message(first),
            client.complete_message(others[0]),
            client.complete_message(lapsed),
            client.complete_message(others[1]),
            return_exceptions=True,
        )
        assert [type(o).__name__ for o in outcomes] == [
            "NoneType",
            "NoneType",
            "MessageLockLost",
            "NoneType",
        ]
        assert gathered == [
            [first.message_id, others[0].message_id, lapsed.message_id, others[1].message_id]
        ]
        again = await client.receive_message("q", timeout=0)  # only the lapsed one is left
        assert again is not None and again.body == lapsed.body and again.delivery_count == 2
        await client.complete_message(again)
        assert await client.receive_message("q", timeout=0) is None


async def test_a_session_whose_lease_was_lost_is_told_so_inside_a_gathered_batch(
    postgres_config: qr.PostgresConfig, gathered: list[list[str]]
) -> None:
    clock = qr.ManualClock()
    async with PostgresQueueClient(postgres_config, clock=clock, default_timeout=5) as client:
        await client.create_queue("q", requires_session=True, lock_duration=10)
        await client.send_messages(
            "q", [qr.Message(b"m", session_id=s) for s in ("lost", "a", "b", "c")]
        )
        lost = await client.accept_session("q", "lost")
        assert lost is not None
        [gone] = await lost.receive_messages(timeout=0)
        clock.advance(11)  # the lease on "lost" lapses
        held: list[tuple[qr.SessionClient, qr.ReceivedMessage]] = []
        for session_id in ("a", "b", "c"):
            session = await client.accept_session("q", session_id)
            assert session is not None
            [message] = await session.receive_messages(timeout=0)
            held.append((session, message))
        outcomes = await asyncio.gather(
            held[0][0].complete_message(held[0][1]),
            held[1][0].complete_message(held[1][1]),
            lost.complete_message(gone),
            held[2][0].complete_message(held[2][1]),
            return_exceptions=True,
        )
        assert [type(o).__name__ for o in outcomes] == [
            "NoneType",
            "NoneType",
            "SessionLockLost",
            "NoneType",
        ]
        assert gathered == [
            [held[0][1].message_id, held[1][1].message_id, gone.message_id, held[2][1].message_id]
        ]
        for session, _ in held:
            await session.close()
        stats = await client.get_queue_statistics("q")
        assert (stats.active, stats.locked) == (1, 0)  # only the lost session's message
