"""`Message` <-> ``ServiceBusMessage``, and `ReceivedMessage` from ``ServiceBusReceivedMessage``.

Everything maps onto Service Bus's own message fields, so messages interoperate with any
other Service Bus client: body as one AMQP data section, ``message_id``, ``session_id``,
``correlation_id``, attributes as application properties (str to str), ``time_to_live`` as
the header TTL in milliseconds (the SDK's setter would drop fractions of a second), and
``scheduled_enqueue_time`` as ``x-opt-scheduled-enqueue-time``. Service Bus reports 0
deliveries on a first delivery; the contract counts 1, so the codec adds one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage

from ..._messages import NO_ATTRIBUTES, Message, ReceivedMessage, frozen_attributes

__all__ = ["METADATA_RESERVE", "decode", "encode", "received_bytes"]

#: Bytes set aside for what Service Bus counts beyond our size rule (AMQP header,
#: properties with a 128-character message and session id, annotations, framing), so a
#: body of ``capabilities.max_message_size`` bytes always fits the service's limit.
METADATA_RESERVE: Final = 1024
#: The AMQP header's TTL is a 32-bit count of milliseconds (~49.7 days): longer TTLs are
#: capped there, and a received TTL of that much reads as none.
_MAX_TTL_MS: Final = 2**32 - 1
_new_tuple = tuple.__new__


def encode(message: Message, default_ttl: timedelta | None = None) -> ServiceBusMessage:
    """The ``ServiceBusMessage`` for a validated `Message`; ``default_ttl`` (the queue's)
    applies when the message has no TTL of its own."""
    attributes = message.attributes
    properties: Any = dict(attributes) if attributes else None
    outgoing = ServiceBusMessage(
        message.body,
        application_properties=properties,
        session_id=message.session_id,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        scheduled_enqueue_time_utc=message.scheduled_enqueue_time,
    )
    ttl = message.time_to_live or default_ttl
    if ttl is not None:
        outgoing.time_to_live = ttl  # sets creation and absolute expiry times too
        # the setter truncates to whole seconds; the header carries milliseconds
        header: Any = outgoing.raw_amqp_message.header
        header.time_to_live = min(_MAX_TTL_MS, max(1, math.ceil(ttl.total_seconds() * 1000)))
    return outgoing


def received_bytes(body: Any) -> bytes:
    """The body of a received message as bytes (one or more AMQP data sections)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, Iterable):
        return b"".join(bytes(part) for part in body)
    return b"" if body is None else str(body).encode()


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


#: Application properties Service Bus sets on a dead-lettered message (read as its
#: ``dead_letter_reason``/``dead_letter_description``, not as attributes).
_DEAD_LETTER_PROPERTIES: Final = frozenset(
    {
        "DeadLetterReason",
        "DeadLetterErrorDescription",
        b"DeadLetterReason",
        b"DeadLetterErrorDescription",
    }
)


def _attributes(properties: Mapping[Any, Any] | None) -> Mapping[str, str]:
    if not properties:
        return NO_ATTRIBUTES
    return frozen_attributes(
        {_text(k): _text(v) for k, v in properties.items() if k not in _DEAD_LETTER_PROPERTIES}
    )


def _ttl(raw: Any) -> timedelta | None:
    header = raw.header
    milliseconds = header.time_to_live if header is not None else None
    if not milliseconds or milliseconds >= _MAX_TTL_MS:
        return None
    return timedelta(milliseconds=milliseconds)


def decode(
    incoming: ServiceBusReceivedMessage,
    receipt: object,
    *,
    locked_until: float | None = None,
    peeked: bool = False,
) -> ReceivedMessage:
    """The `ReceivedMessage` for a delivered (or ``peeked``) ``incoming``.

    ``locked_until`` (epoch seconds) overrides the message's own lock expiry: a session
    message is locked by its session. ``receipt`` is whatever settlement needs (``None``
    for a peeked message, which also counts no delivery of its own).
    """
    raw = incoming.raw_amqp_message
    properties = raw.properties
    message_id = incoming.message_id
    sequence_number = incoming.sequence_number
    if message_id is None:
        message_id = f"sequence-{sequence_number}"
    sent = _new_tuple(
        Message,
        (
            received_bytes(raw.body),
            incoming.session_id,
            _attributes(raw.application_properties),
            incoming.correlation_id if properties is not None else None,
            _text(message_id),
            _ttl(raw),
            incoming.scheduled_enqueue_time_utc,
        ),
    )
    enqueued = incoming.enqueued_time_utc
    if peeked:
        locked_until = None
    elif locked_until is None:
        until = incoming.locked_until_utc
        locked_until = None if until is None else until.timestamp()
    count = incoming.delivery_count or 0
    return _new_tuple(
        ReceivedMessage,
        (
            sent,
            # Service Bus counts earlier deliveries (0 on the first); the contract counts this one
            count if peeked else count + 1,
            enqueued.timestamp() if enqueued is not None else time.time(),
            locked_until,
            incoming.dead_letter_reason,
            incoming.dead_letter_error_description,
            sequence_number,
            receipt,
        ),
    )


def utc(timestamp: float) -> datetime:
    """An aware UTC datetime for epoch seconds."""
    return datetime.fromtimestamp(timestamp, UTC)
