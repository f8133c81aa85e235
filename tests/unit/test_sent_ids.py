"""The record of generated message ids this process sent (the SQL adapters' duplicate
detection for ids they leave out of the unique index)."""

from __future__ import annotations

import queue_runtime as qr
from queue_runtime._names import generated_number
from queue_runtime.adapters.sql._sent import FRESH, SentIds


def _generated() -> str:
    return qr.Message(b"x").message_id


def test_only_ids_made_in_this_process_count_as_generated() -> None:
    mine = _generated()
    assert generated_number(mine) is not None
    assert generated_number("order-17") is None
    assert generated_number(mine.rsplit("-", 1)[0] + "-x1") is None
    assert generated_number("0123456789abcdef-1") is None  # another process's prefix
    assert generated_number(17) is None


def test_a_generated_id_is_fresh_once_then_looked_for_above_the_last_stored_seq() -> None:
    sent = SentIds()
    first, second = _generated(), _generated()
    assert sent.note("db", "order-17") is None  # the database's unique index handles it
    assert sent.note("db", first) == FRESH
    assert sent.note("db", first) == 0
    sent.saw("db", 40)
    sent.saw("db", 7)  # an older number never lowers the mark
    assert sent.note("db", second) == FRESH
    assert sent.note("db", second) == 40
    assert sent.note("other-db", second) == FRESH  # per database


def test_forgotten_ids_and_older_ones_are_looked_for_everywhere() -> None:
    sent = SentIds(capacity=2)
    never_sent, a, b, c, d = (_generated() for _ in range(5))
    sent.saw("db", 10)
    for message_id in (a, b, c):
        assert sent.note("db", message_id) == FRESH
    assert sent.note("db", a) == 0  # forgotten: perhaps sent, below any mark
    assert sent.note("db", a) == 0  # and remembered so
    assert sent.note("db", never_sent) == 0  # no newer than a forgotten id
    assert sent.note("db", d) == FRESH
    sent.clear()
    assert sent.note("db", a) == FRESH
