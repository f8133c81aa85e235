"""Message <-> ServiceBusMessage: every field maps onto Service Bus's own, bytes and Unicode
survive, TTL keeps its milliseconds, and delivery counts follow the contract (1 on first)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus._pyamqp._encode import encode_payload
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport

import queue_runtime as qr
from queue_runtime.adapters.servicebus._codec import decode, encode, received_bytes


def delivered(
    outgoing: ServiceBusMessage, *, delivery_count: int | None = 0, **annotations: Any
) -> ServiceBusReceivedMessage:
    """``outgoing`` as a broker would deliver it: over the wire with broker annotations."""
    raw = outgoing.raw_amqp_message
    raw.annotations = {
        **(raw.annotations or {}),
        b"x-opt-sequence-number": 7,
        b"x-opt-enqueued-time": 1_700_000_000_000,
        b"x-opt-locked-until": 1_700_000_030_000,
        **{key.replace("_", "-").encode(): value for key, value in annotations.items()},
    }
    assert raw.header is not None
    raw.header.delivery_count = delivery_count
    payload = encode_payload(bytearray(), PyamqpTransport.to_outgoing_amqp_message(raw))
    return ServiceBusReceivedMessage.from_bytes(bytes(payload))


def test_every_field_survives_the_wire() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    sent = qr.Message(
        bytes(range(256)),
        session_id="repo/pr-42",
        attributes={"event": "push", "ünï": "cödé"},
        correlation_id="corr-1",
        time_to_live=timedelta(seconds=1.5),
        scheduled_enqueue_time=when,
    )
    outgoing = encode(sent)
    assert outgoing.message_id == sent.message_id
    assert outgoing.session_id == "repo/pr-42"
    assert outgoing.scheduled_enqueue_time_utc == when
    got = decode(delivered(outgoing), receipt="r")
    assert got.message == sent
    assert got.attributes == {"event": "push", "ünï": "cödé"}
    assert (got.sequence_number, got.delivery_count, got.receipt) == (7, 1, "r")
    assert got.enqueued_timestamp == 1_700_000_000
    assert got.locked_until_timestamp == 1_700_000_030


def test_ttl_keeps_fractions_of_a_second() -> None:
    outgoing = encode(qr.Message(b"x", time_to_live=timedelta(milliseconds=1500)))
    header = outgoing.raw_amqp_message.header
    assert header is not None and header.time_to_live == 1500
    assert decode(delivered(outgoing), None).time_to_live == timedelta(milliseconds=1500)


def test_ttls_beyond_the_header_are_capped_and_read_as_none() -> None:
    outgoing = encode(qr.Message(b"x", time_to_live=timedelta(days=60)))
    header = outgoing.raw_amqp_message.header
    assert header is not None and header.time_to_live == 2**32 - 1
    assert decode(delivered(outgoing), None).time_to_live is None


def test_delivery_counts_start_at_one() -> None:
    outgoing = encode(qr.Message(b"x"))
    assert decode(delivered(outgoing, delivery_count=0), "r").delivery_count == 1
    assert decode(delivered(outgoing, delivery_count=None), "r").delivery_count == 1
    assert decode(delivered(outgoing, delivery_count=4), "r").delivery_count == 5


def test_dead_letter_reason_and_description_come_back() -> None:
    outgoing = encode(qr.Message(b"x"))
    outgoing.application_properties = {
        "DeadLetterReason": "bad",
        "DeadLetterErrorDescription": "very bad",
    }
    got = decode(delivered(outgoing), "r")
    assert (got.dead_letter_reason, got.dead_letter_description) == ("bad", "very bad")
    assert got.attributes == {}  # the service's own properties are not attributes


def test_a_session_message_is_locked_by_its_session() -> None:
    got = decode(delivered(encode(qr.Message(b"x", session_id="s"))), "r", locked_until=42.0)
    assert got.locked_until_timestamp == 42.0


def test_foreign_messages_decode() -> None:
    foreign = ServiceBusMessage("text body", application_properties={"n": 5, "flag": True})
    foreign.message_id = None
    got = decode(delivered(foreign, delivery_count=2), None, peeked=True)
    assert got.body == b"text body"
    assert got.attributes == {"n": "5", "flag": "True"}
    assert got.message_id == "sequence-7"
    assert got.locked_until is None  # a peeked message has no lock
    assert got.delivery_count == 2  # and counts only the deliveries so far


def test_received_bytes_reads_every_body_shape() -> None:
    assert received_bytes(b"a") == b"a"
    assert received_bytes([b"a", b"b"]) == b"ab"
    assert received_bytes(iter([bytearray(b"a")])) == b"a"
    assert received_bytes("é") == "é".encode()
    assert received_bytes(None) == b""
