"""Message construction and the send-time validation rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import queue_runtime as qr
from queue_runtime._messages import NO_ATTRIBUTES, frozen_attributes, validate_message


def check(message: qr.Message, *, max_size: int = 1024, requires_session: bool = False) -> int:
    return validate_message(message, max_size=max_size, requires_session=requires_session)


def test_message_defaults() -> None:
    m = qr.Message(b"body")
    assert m.body == b"body" and m.session_id is None and m.attributes == {}
    assert m.attributes is NO_ATTRIBUTES and m.message_id
    assert m.time_to_live is None and m.scheduled_enqueue_time is None


def test_message_is_immutable_and_keeps_its_id() -> None:
    m = qr.Message(b"body")
    with pytest.raises(AttributeError):
        m.body = b"other"  # type: ignore[misc]
    assert m.message_id == m.message_id
    assert m._replace(body=b"x").message_id == m.message_id


def test_size_counts_body_attributes_and_correlation_id() -> None:
    m = qr.Message(b"12345", attributes={"ké": "vé"}, correlation_id="abc")
    assert check(m) == 5 + len("ké".encode()) + len("vé".encode()) + 3


def test_size_limit_is_exact() -> None:
    assert check(qr.Message(b"x" * 10), max_size=10) == 10
    with pytest.raises(qr.ValidationError, match="11 bytes"):
        check(qr.Message(b"x" * 11), max_size=10)


@pytest.mark.parametrize(
    "message",
    [
        qr.Message(b""),
        qr.Message("text"),  # type: ignore[arg-type]
        qr.Message(bytearray(b"x")),  # type: ignore[arg-type]
        qr.Message(b"x", session_id=""),
        qr.Message(b"x", session_id="x" * 129),
        qr.Message(b"x", attributes={"": "v"}),
        qr.Message(b"x", attributes={"k" * 257: "v"}),
        qr.Message(b"x", attributes={"qr-internal": "v"}),
        qr.Message(b"x", attributes={"k": 1}),  # type: ignore[dict-item]
        qr.Message(b"x", attributes=[("k", "v")]),  # type: ignore[arg-type]
        qr.Message(b"x", correlation_id="c" * 129),
        qr.Message(b"x", correlation_id="lone \udc80 surrogate"),
        qr.Message(b"x", attributes={"k": "lone \udc80 surrogate"}),
        qr.Message(b"x", attributes={"\ud800": "v"}),
        qr.Message(b"x", message_id=""),
        qr.Message(b"x", time_to_live=timedelta(0)),
        qr.Message(b"x", time_to_live=5),  # type: ignore[arg-type]
        qr.Message(b"x", scheduled_enqueue_time=datetime(2030, 1, 1)),  # naive
    ],
    ids=lambda m: repr(m)[:60],
)
def test_bad_messages_raise_validation_error(message: qr.Message) -> None:
    with pytest.raises(qr.ValidationError):
        check(message)


def test_session_queue_requires_session_id() -> None:
    with pytest.raises(qr.ValidationError, match="session"):
        check(qr.Message(b"x"), requires_session=True)
    assert check(qr.Message(b"x", session_id="s"), requires_session=True) == 1


def test_not_a_message() -> None:
    with pytest.raises(qr.ValidationError):
        check(b"raw bytes")  # type: ignore[arg-type]


def test_received_message_reads_through_to_the_sent_message() -> None:
    sent = qr.Message(b"b", session_id="s", attributes={"k": "v"}, correlation_id="c")
    received = qr.ReceivedMessage(sent, 2, 1_700_000_000.0, 1_700_000_030.0, "why", "how", 7)
    assert received.body == b"b" and received.session_id == "s"
    assert received.attributes == {"k": "v"} and received.correlation_id == "c"
    assert received.message_id == sent.message_id and received.to_message() is sent
    assert received.enqueued_at == datetime.fromtimestamp(1_700_000_000, UTC)
    assert received.locked_until == datetime.fromtimestamp(1_700_000_030, UTC)
    assert received.delivery_count == 2 and received.dead_letter_reason == "why"
    assert "delivery_count=2" in repr(received)


def test_stored_attributes_are_a_read_only_dict() -> None:
    import json

    attributes = frozen_attributes({"k": "v"})
    assert isinstance(attributes, dict) and attributes == {"k": "v"}
    assert json.loads(json.dumps(attributes)) == {"k": "v"}
    for mutate in (
        lambda: attributes.__setitem__("k", "x"),
        lambda: attributes.update(k="x"),
        lambda: attributes.pop("k"),
        lambda: attributes.clear(),
    ):
        with pytest.raises(TypeError):
            mutate()
    assert attributes == {"k": "v"} and dict(attributes) == {"k": "v"}


def test_messages_pickle_and_copy() -> None:
    import copy
    import pickle

    sent = qr.Message(b"b", session_id="s", attributes={"k": "v"})
    stored = sent._replace(
        attributes=__import__("queue_runtime._messages")._messages.frozen_attributes(
            sent.attributes
        )
    )
    received = qr.ReceivedMessage(stored, 1, 1.0, 2.0)
    for value in (sent, stored, received):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
