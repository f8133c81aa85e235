"""The emulator's AMQP encoding read back by the SDK's own decoder (no broker, no socket)."""

from __future__ import annotations

import pytest
from azure.servicebus._pyamqp._decode import decode_payload
from proton import Message

from queue_runtime.testing.servicebus_emulator._admin import format_duration, parse_duration
from queue_runtime.testing.servicebus_emulator._codec import (
    encode_delivery,
    parse_message,
    unpack_batch,
)


def _client_message() -> bytes:
    message = Message(body=b"payload", id="m-1", properties={"kind": "push"})
    message.ttl = 60
    return bytes(message.encode())


def test_a_zero_delivery_count_reaches_the_sdk_as_zero() -> None:
    parsed = parse_message(_client_message())
    wire = encode_delivery(parsed, delivery_count=0, annotations={"x-opt-sequence-number": 7})
    decoded = decode_payload(memoryview(wire))
    assert decoded.header is not None
    assert decoded.header.delivery_count == 0
    assert decoded.header.first_acquirer is True
    assert decoded.header.ttl == 60_000
    assert decoded.message_annotations[b"x-opt-sequence-number"] == 7
    assert decoded.application_properties == {b"kind": b"push"}
    assert decoded.properties.message_id == b"m-1"


def test_redeliveries_count_up_and_dead_letter_properties_are_added() -> None:
    parsed = parse_message(_client_message())
    wire = encode_delivery(
        parsed,
        delivery_count=3,
        annotations={},
        application_properties={"kind": "push", "DeadLetterReason": "why"},
    )
    decoded = decode_payload(memoryview(wire))
    assert decoded.header.delivery_count == 3 and decoded.header.first_acquirer is False
    assert decoded.application_properties == {b"kind": b"push", b"DeadLetterReason": b"why"}


def test_a_single_message_is_not_a_batch() -> None:
    assert unpack_batch(parse_message(_client_message())) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT1M", 60), ("PT0.5S", 0.5), ("P14D", 14 * 86400), ("PT1H2M3S", 3723), ("P1DT1S", 86401)],
)
def test_iso_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_bad_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration("5 seconds")
