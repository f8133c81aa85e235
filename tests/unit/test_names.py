"""QueueName, SessionId and MessageId validation."""

from __future__ import annotations

import pytest

import queue_runtime as qr


@pytest.mark.parametrize("name", ["orders", "orders.fifo", "a", "A-b_c.d", "x" * 260])
def test_valid_queue_names(name: str) -> None:
    assert qr.QueueName(name) == name


@pytest.mark.parametrize(
    "name", ["", " ", "-orders", "orders-", "or ders", "ord/ers", "x" * 261, "ünïcode", ".fifo"]
)
def test_invalid_queue_names_raise_validation_error(name: str) -> None:
    with pytest.raises(qr.ValidationError):
        qr.QueueName(name)


def test_queue_name_rejects_non_strings() -> None:
    with pytest.raises(qr.ValidationError):
        qr.QueueName(42)  # type: ignore[arg-type]


def test_dead_letter_name_round_trip() -> None:
    q = qr.QueueName("orders")
    dlq = q.dead_letter
    assert dlq.is_dead_letter and not q.is_dead_letter
    assert dlq == "orders/$DeadLetterQueue"
    assert dlq.parent == q and q.parent == q
    assert qr.QueueName(str(dlq)) == dlq
    with pytest.raises(qr.ValidationError):
        _ = dlq.dead_letter


def test_queue_name_is_a_str() -> None:
    q = qr.QueueName("orders")
    assert isinstance(q, str) and {q: 1}["orders"] == 1
    assert qr.QueueName(q) is q
    assert repr(q) == "QueueName('orders')"


@pytest.mark.parametrize("value", ["s", "repo/pr-42", "x" * 128, "日本"])
def test_valid_session_ids(value: str) -> None:
    assert qr.SessionId(value) == value


@pytest.mark.parametrize("value", ["", "x" * 129, "tab\there", "new\nline"])
def test_invalid_session_ids(value: str) -> None:
    with pytest.raises(qr.ValidationError):
        qr.SessionId(value)


@pytest.mark.parametrize("value", ["", "x" * 129, "ünï", "a b\n"])
def test_invalid_message_ids(value: str) -> None:
    with pytest.raises(qr.ValidationError):
        qr.MessageId(value)


def test_generated_message_ids_are_unique_and_valid() -> None:
    ids = {qr.Message(b"x").message_id for _ in range(10_000)}
    assert len(ids) == 10_000
    for mid in list(ids)[:10]:
        qr.MessageId(mid)
