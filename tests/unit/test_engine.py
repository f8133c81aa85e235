"""The queue engine driven directly with explicit times: no clock, no asyncio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import queue_runtime as qr
from queue_runtime.engine import (
    MAX_DELIVERY_COUNT_EXCEEDED,
    TTL_EXPIRED,
    QueueEngine,
    QueueSettings,
)

T0 = 1_900_000_000.0


def engine_with(name: str = "q", **settings: object) -> QueueEngine:
    engine = QueueEngine()
    engine.create_queue(name, QueueSettings(**settings))  # type: ignore[arg-type]
    return engine


def test_settings_are_validated() -> None:
    for bad in ({"max_delivery_count": 0}, {"lock_duration": 0}, {"default_message_ttl": -1}):
        with pytest.raises(qr.ValidationError):
            QueueSettings(**bad)  # type: ignore[arg-type]


def test_create_queue_is_idempotent_but_refuses_other_settings() -> None:
    engine = engine_with(lock_duration=10)
    engine.create_queue("q", QueueSettings(lock_duration=10))
    with pytest.raises(qr.QueueAlreadyExists):
        engine.create_queue("q", QueueSettings(lock_duration=20))
    with pytest.raises(qr.ValidationError):
        engine.create_queue("q/$DeadLetterQueue", QueueSettings())


def test_lock_expiry_returns_the_message_ahead_of_later_ones() -> None:
    engine = engine_with(lock_duration=10)
    engine.enqueue("q", [qr.Message(b"1"), qr.Message(b"2")], T0)
    stale_token = engine.receive("q", 1, T0)[0].lock_token
    assert engine.next_due("q") == T0 + 10
    with pytest.raises(qr.MessageLockLost):
        engine.complete("q", stale_token, T0 + 10)
    assert [s.message.body for s in engine.receive("q", 5, T0 + 10)] == [b"1", b"2"]


def test_max_delivery_count_moves_to_dead_letter_queue() -> None:
    engine = engine_with(max_delivery_count=2)
    engine.enqueue("q", [qr.Message(b"poison")], T0)
    for _ in range(2):
        [stored] = engine.receive("q", 1, T0)
        engine.abandon("q", stored.lock_token, T0)
    assert engine.receive("q", 1, T0) == []
    [dead] = engine.receive("q/$DeadLetterQueue", 1, T0)
    assert dead.dead_letter_reason == MAX_DELIVERY_COUNT_EXCEEDED and dead.delivery_count == 3


def test_ttl_expiry_drops_or_dead_letters() -> None:
    engine = engine_with("drop")
    engine.create_queue("keep", QueueSettings(dead_letter_on_expiration=True))
    for name in ("drop", "keep"):
        engine.enqueue(name, [qr.Message(b"x", time_to_live=timedelta(seconds=5))], T0)
        assert engine.receive(name, 1, T0 + 5) == []
    assert engine.statistics("drop", T0 + 5).expired == 1
    [dead] = engine.receive("keep/$DeadLetterQueue", 1, T0 + 5)
    assert dead.dead_letter_reason == TTL_EXPIRED


def test_scheduled_messages_wait_for_their_time() -> None:
    engine = engine_with()
    when = datetime.fromtimestamp(T0 + 60, UTC)
    engine.enqueue("q", [qr.Message(b"later", scheduled_enqueue_time=when)], T0)
    assert engine.statistics("q", T0).scheduled == 1
    assert engine.next_due("q") == T0 + 60
    assert engine.receive("q", 1, T0 + 59) == []
    assert engine.receive("q", 1, T0 + 60)[0].message.body == b"later"


def test_sessions_lease_order_and_release() -> None:
    engine = engine_with(requires_session=True, lock_duration=10)
    engine.enqueue(
        "q",
        [
            qr.Message(b"a1", session_id="a"),
            qr.Message(b"b1", session_id="b"),
            qr.Message(b"a2", session_id="a"),
        ],
        T0,
    )
    lease = engine.accept_session("q", None, T0)
    assert lease is not None and lease.session_id == "a"
    with pytest.raises(qr.SessionLocked):
        engine.accept_session("q", "a", T0)
    got = engine.session_receive(lease, 10, T0)
    assert [s.message.body for s in got] == [b"a1", b"a2"]
    engine.release_session(lease, T0)  # both come back, in order
    again = engine.accept_session("q", "a", T0)
    assert again is not None
    assert [s.message.body for s in engine.session_receive(again, 10, T0)] == [b"a1", b"a2"]
    with pytest.raises(qr.SessionLockLost):
        engine.session_receive(again, 1, T0 + 10)
    stats = engine.statistics("q", T0 + 10)
    assert stats.locked_sessions == 0 and stats.active == 3


def test_a_session_with_only_state_is_not_offered() -> None:
    engine = engine_with(requires_session=True)
    lease = engine.accept_session("q", "s", T0)
    assert lease is not None
    engine.set_state(lease, b"cursor", T0)
    engine.release_session(lease, T0)
    assert engine.accept_session("q", None, T0) is None
    lease = engine.accept_session("q", "s", T0)
    assert lease is not None and engine.get_state(lease, T0) == b"cursor"


def test_peek_does_not_lock() -> None:
    engine = engine_with()
    engine.enqueue("q", [qr.Message(b"1"), qr.Message(b"2")], T0)
    assert [s.message.body for s in engine.peek("q", 10, T0)] == [b"1", b"2"]
    assert len(engine.receive("q", 10, T0)) == 2


def test_listeners_hear_about_new_messages() -> None:
    heard: list[tuple[str, str | None]] = []
    engine = QueueEngine(on_available=lambda q, s: heard.append((q, s)))
    engine.create_queue("q", QueueSettings(requires_session=True))
    engine.send("q", [qr.Message(b"x", session_id="s")], T0, max_size=100)
    assert heard == [("q", "s")]


def test_send_validates_everything_before_storing_anything() -> None:
    engine = engine_with()
    with pytest.raises(qr.ValidationError):
        engine.send("q", [qr.Message(b"ok"), qr.Message(b"")], T0, max_size=100)
    assert engine.statistics("q", T0).active == 0
    with pytest.raises(qr.QueueNotFound):
        engine.send("nope", [qr.Message(b"ok")], T0, max_size=100)
    with pytest.raises(qr.ValidationError):
        engine.send("q/$DeadLetterQueue", [qr.Message(b"ok")], T0, max_size=100)
