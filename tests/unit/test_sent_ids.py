"""The record of generated message ids this process sent (the SQL adapters' duplicate
detection for ids they leave out of the unique index)."""

from __future__ import annotations

import queue_runtime as qr
from queue_runtime._names import id_prefix
from queue_runtime.adapters.sql._sent import FRESH, SentIds


def _generated() -> qr.Message:
    return qr.Message(b"x")


def _note(sent: SentIds, database: str, message: qr.Message) -> int | None:
    [look] = sent.note(database, [message])
    return look


def test_only_ids_made_in_this_process_count_as_generated() -> None:
    mine = _generated()
    others = [
        qr.Message(b"x", message_id="order-17"),
        mine._replace(message_id=mine.message_id + "~r0123456789ab"),  # a redrive id
        mine._replace(message_id=id_prefix() + "x1"),
        mine._replace(message_id="0123456789abcdef-1"),  # another process's prefix
        mine._replace(message_id=17),
        object(),
    ]
    assert SentIds().note("db", [mine, *others]) == [FRESH] + [None] * len(others)


def test_a_generated_id_is_fresh_once_then_looked_for_above_the_last_stored_seq() -> None:
    sent = SentIds()
    first, second = _generated(), _generated()
    given = qr.Message(b"x", message_id="order-17")
    assert _note(sent, "db", given) is None  # the database's unique index handles it
    assert _note(sent, "db", first) == FRESH
    assert _note(sent, "db", first) == 0
    sent.saw("db", 40)
    sent.saw("db", 7)  # an older number never lowers the mark
    assert _note(sent, "db", second) == FRESH
    assert _note(sent, "db", second) == 40
    assert _note(sent, "other-db", second) == FRESH  # per database


def test_forgotten_ids_and_older_ones_are_looked_for_everywhere() -> None:
    sent = SentIds(capacity=2)
    never_sent, a, b, c, d = (_generated() for _ in range(5))
    sent.saw("db", 10)  # no record yet: nothing to raise
    for message in (a, b, c):
        assert _note(sent, "db", message) == FRESH
    assert _note(sent, "db", a) == 0  # forgotten: perhaps sent, below any mark
    assert _note(sent, "db", a) == 0  # and remembered so
    assert _note(sent, "db", never_sent) == 0  # no newer than a forgotten id
    assert _note(sent, "db", d) == FRESH
    sent.clear()
    assert _note(sent, "db", a) == FRESH


def test_a_batch_is_noted_in_one_call_and_repeats_in_it_are_seen() -> None:
    sent = SentIds()
    fresh = _generated()
    given = qr.Message(b"x", message_id="order-17")
    assert sent.note("db", [fresh, given, fresh, object()]) == [FRESH, None, 0, None]
