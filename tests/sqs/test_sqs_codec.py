"""The SQS encoding and naming rules, without a server: exact round trips and exact sizes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqs_helpers import worst_case_message

import queue_runtime as qr
from queue_runtime.adapters.sqs._codec import (
    BINARY_BODY,
    METADATA_RESERVE,
    REDRIVE_DESCRIPTION,
    Outgoing,
    decode,
    encode,
    guaranteed_size,
    sqs_size,
    with_dead_letter,
)
from queue_runtime.adapters.sqs._naming import (
    HASHED_ID_PREFIX,
    candidate_names,
    dead_letter_dedup_id,
    dedup_id,
    group_id,
    sqs_names,
)


def as_received(
    outgoing: Outgoing, *, group: str | None = None, count: int = 1, sqs_id: str = "sqs-1"
) -> dict[str, Any]:
    """What ReceiveMessage would return for ``outgoing``."""
    system = {"ApproximateReceiveCount": str(count), "SentTimestamp": "1700000000123"}
    if group is not None:
        system["MessageGroupId"] = group
        system["SequenceNumber"] = "18880000000000000001"
    return {
        "MessageId": sqs_id,
        "ReceiptHandle": "handle",
        "Body": outgoing.body,
        "Attributes": system,
        "MessageAttributes": {
            name: {**value, "StringListValues": [], "BinaryListValues": []}
            for name, value in outgoing.attributes.items()
        },
    }


def round_trip(message: qr.Message, *, fifo: bool = False) -> qr.Message:
    outgoing = encode(message, fifo=fifo)
    group = group_id(message.session_id) if fifo and message.session_id else None
    return decode(as_received(outgoing, group=group), dead_letter_queue=False).message


# -- bodies --------------------------------------------------------------------------------


def test_a_utf8_body_travels_as_the_sqs_body() -> None:
    outgoing = encode(qr.Message('{"a": "✓"}\r\n\t'.encode()), fifo=False)
    assert outgoing.body == '{"a": "✓"}\r\n\t'
    assert "qr-body" not in outgoing.attributes


@pytest.mark.parametrize(
    "body",
    [bytes(range(256)), b"\xff\xfe", b"nul\x00", b"\xef\xbf\xbf", "\ud7ff\ue000".encode()[:1]],
)
def test_other_bytes_travel_raw_in_a_binary_attribute(body: bytes) -> None:
    outgoing = encode(qr.Message(body), fifo=False)
    assert outgoing.body == BINARY_BODY
    assert outgoing.attributes["qr-body"] == {"DataType": "Binary", "BinaryValue": body}
    assert round_trip(qr.Message(body)).body == body


def test_every_single_byte_value_round_trips() -> None:
    for value in range(256):
        body = bytes([value]) * 3
        assert round_trip(qr.Message(body)).body == body


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=300),
    attributes=st.dictionaries(
        st.text(min_size=1, max_size=20).filter(lambda k: not k.startswith("qr-")),
        st.text(max_size=30),
        max_size=15,
    ),
    correlation_id=st.none() | st.text(max_size=128),
    session_id=st.none() | st.text(min_size=1, max_size=128).filter(str.isprintable),
    fifo=st.booleans(),
)
def test_everything_round_trips(
    body: bytes,
    attributes: dict[str, str],
    correlation_id: str | None,
    session_id: str | None,
    fifo: bool,
) -> None:
    if fifo and session_id is None:
        session_id = "s"
    sent = qr.Message(
        body,
        session_id=session_id,
        attributes=attributes,
        correlation_id=correlation_id,
        time_to_live=timedelta(seconds=90, microseconds=7),
    )
    got = round_trip(sent, fifo=fifo)
    assert got.body == body
    assert dict(got.attributes) == attributes
    assert (got.correlation_id, got.session_id, got.message_id) == (
        correlation_id,
        session_id,
        sent.message_id,
    )
    assert got.time_to_live == timedelta(seconds=90, microseconds=7)


def test_values_sqs_cannot_carry_as_text_are_escaped() -> None:
    awkward = {"lone surrogate": "\udc80", "non-character": "\uffff", "nul": "\x00"}
    outgoing = encode(qr.Message(b"x", attributes=awkward, correlation_id="\ufffe"), fifo=False)
    for value in outgoing.attributes.values():
        if value["DataType"] == "String":
            value["StringValue"].encode("utf-8")  # valid UTF-8: SQS takes it
    got = round_trip(qr.Message(b"x", attributes=awkward, correlation_id="\ufffe"))
    assert dict(got.attributes) == awkward
    assert got.correlation_id == "\ufffe"


def test_more_than_ten_attributes_pack_into_one() -> None:
    attributes = {f"key {i} ✓": f"value {i}" for i in range(40)}
    outgoing = encode(qr.Message(b"x", attributes=attributes), fifo=False)
    assert len(outgoing.attributes) <= 10
    packed = outgoing.attributes["qr-attributes"]
    assert packed["DataType"] == "Binary"
    parts = packed["BinaryValue"].split(b"\xff")
    assert dict(zip(parts[::2], parts[1::2], strict=True)) == {
        k.encode(): v.encode() for k, v in attributes.items()
    }


def test_attributes_of_older_versions_still_decode() -> None:
    outgoing = encode(qr.Message(b"x", message_id="old"), fifo=False)
    outgoing.attributes["qr-attributes"] = {
        "DataType": "String",
        "StringValue": json.dumps({"k": "v", "é": "ü"}),
    }
    got = decode(as_received(outgoing), dead_letter_queue=False).message
    assert dict(got.attributes or {}) == {"k": "v", "é": "ü"}


@pytest.mark.parametrize("max_size", [1024, 4096, 65536, 256 * 1024, 1024 * 1024])
def test_the_guaranteed_size_holds_for_the_costliest_messages(max_size: int) -> None:
    size = guaranteed_size(max_size)
    assert size > 0
    for fifo in (False, True):
        worst = worst_case_message(size, session_id="\N{GRINNING FACE} x" * 32)
        assert encode(worst, fifo=fifo).size <= max_size


# -- sizes ---------------------------------------------------------------------------------


def test_size_is_what_sqs_counts() -> None:
    message = qr.Message(b"\xff" * 10, attributes={"k": "é"}, message_id="id-1")
    outgoing = encode(message, fifo=False)
    expected = len(BINARY_BODY)
    for name, value in outgoing.attributes.items():
        payload = value.get("BinaryValue") or value["StringValue"].encode()
        expected += len(name) + len(value["DataType"]) + len(payload)
    assert outgoing.size == sqs_size(outgoing.body, outgoing.attributes) == expected


def test_the_reserve_covers_a_binary_body_with_the_longest_id() -> None:
    message = qr.Message(b"\xff" * 1000, message_id="i" * 128)
    assert encode(message, fifo=False).size == 1000 + METADATA_RESERVE


def test_dead_letter_texts_are_shortened_to_fit() -> None:
    message = qr.Message(b"x" * 900, message_id="m")
    incoming = decode(as_received(encode(message, fifo=False)), dead_letter_queue=False)
    limit = encode(message, fifo=False).size + 100
    moved = with_dead_letter(incoming, "r" * 30, "d" * 4096, max_size=limit)
    assert moved.size <= limit
    meta = json.loads(moved.attributes["qr-meta"]["StringValue"])
    assert meta["dead_letter_reason"] == "r" * 30
    assert meta["dead_letter_description"].startswith("d")


# -- decoding ------------------------------------------------------------------------------


def test_in_a_dead_letter_queue_no_reason_means_the_redrive_policy_moved_it() -> None:
    raw = as_received(encode(qr.Message(b"x"), fifo=False))
    incoming = decode(raw, dead_letter_queue=True)
    assert incoming.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert incoming.dead_letter_description == REDRIVE_DESCRIPTION
    assert decode(raw, dead_letter_queue=False).dead_letter_reason is None


def test_an_explicit_dead_lettering_without_reason_keeps_none() -> None:
    incoming = decode(as_received(encode(qr.Message(b"x"), fifo=False)), dead_letter_queue=False)
    moved = with_dead_letter(incoming, None, None, max_size=10_000)
    dead = decode(as_received(moved), dead_letter_queue=True)
    assert (dead.dead_letter_reason, dead.dead_letter_description) == (None, None)


def test_messages_from_other_senders_decode() -> None:
    raw = {
        "MessageId": "abc",
        "ReceiptHandle": "h",
        "Body": "plain text",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {
            "color": {"DataType": "String", "StringValue": "red"},
            "size": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00"},
        },
    }
    incoming = decode(raw, dead_letter_queue=False)
    assert incoming.message.body == b"plain text"
    assert incoming.message.message_id == "abc"
    assert dict(incoming.message.attributes) == {"color": "red", "size": "3"}
    assert (incoming.receive_count, incoming.enqueued) == (2, 1_700_000_000.0)


# -- names ---------------------------------------------------------------------------------


def test_queue_names() -> None:
    assert sqs_names(qr.QueueName("orders"), fifo=True).queue == "orders.fifo"
    assert sqs_names(qr.QueueName("orders"), fifo=True).dead_letter == "orders-dlq.fifo"
    assert sqs_names(qr.QueueName("orders.fifo"), fifo=True).queue == "orders.fifo"
    assert sqs_names(qr.QueueName("orders"), fifo=False).dead_letter == "orders-dlq"
    assert [c.queue for c in candidate_names(qr.QueueName("a_b-c"))] == ["a_b-c.fifo", "a_b-c"]
    sqs_names(qr.QueueName("x" * 71), fifo=True)
    sqs_names(qr.QueueName("x" * 76), fifo=False)


@pytest.mark.parametrize(
    ("name", "fifo"),
    [
        ("dotted.name", False),
        ("dotted.name", True),
        ("orders.fifo", False),
        ("x" * 72, True),
        ("x" * 77, False),
    ],
)
def test_names_sqs_cannot_take(name: str, fifo: bool) -> None:
    with pytest.raises(qr.ValidationError):
        sqs_names(qr.QueueName(name), fifo=fifo)


def test_group_ids_map_one_to_one() -> None:
    assert group_id("repo/pr-42#comment:7") == "repo/pr-42#comment:7"
    hashed = group_id("tenant 1/ordre-é ✓")
    assert hashed.startswith(HASHED_ID_PREFIX) and len(hashed) <= 128
    # an id that looks like a hash is hashed too, so it cannot collide with one
    assert group_id(hashed) != hashed
    assert dedup_id("a b") != "a b" and dedup_id("ab") == "ab"
    assert dead_letter_dedup_id("sqs-1") != dead_letter_dedup_id("sqs-2")
