"""Message <-> SQS encoding, and the exact SQS size of an encoded message.

Encoding (all our own attributes are under reserved ``qr-`` names):

- **Body**: sent as the SQS body when it is UTF-8 of characters SQS allows; any other bytes
  travel raw in a ``Binary`` attribute ``qr-body`` (the SQS body is then ``"."``). No base64
  inflation, and every byte value round-trips.
- **Message id**: ``qr-id`` (also the deduplication id on FIFO queues).
- **Attributes**: one ``Binary`` attribute ``qr-attributes``: the UTF-8 keys and values joined
  by byte 0xFF (which UTF-8 never contains), so any number of them, with any Unicode keys and
  values, fits SQS's limit of 10 message attributes, at 2 bytes per attribute and no escaping.
  (Messages of older versions carry a JSON object in a ``String`` ``qr-attributes``; they
  still decode.)
- **Metadata**: ``qr-meta``, a JSON object with whichever of correlation id, session id (on
  standard queues, or when the group id is a hash), time to live and dead-letter reason and
  description the message has.

SQS counts a message's size as its body plus, per attribute, the UTF-8 bytes of its name, its
type and its value; `sqs_size` counts exactly that, and `guaranteed_size` is the largest size
by the contract's rule (body + attribute keys and values + correlation id) whose encoding
always fits: ``capabilities.max_message_size``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from ..._messages import RESERVED_ATTRIBUTE_PREFIX, Message, frozen_attributes
from ...engine import MAX_DELIVERY_COUNT_EXCEEDED
from ._naming import group_id

__all__ = [
    "ATTRIBUTES_ATTRIBUTE",
    "ATTRIBUTE_SEPARATOR",
    "BINARY_BODY",
    "BODY_ATTRIBUTE",
    "ID_ATTRIBUTE",
    "METADATA_RESERVE",
    "META_ATTRIBUTE",
    "REDRIVE_DESCRIPTION",
    "Incoming",
    "Outgoing",
    "SqsAttribute",
    "decode",
    "encode",
    "guaranteed_size",
    "sqs_size",
    "with_dead_letter",
]

ID_ATTRIBUTE: Final = "qr-id"
ATTRIBUTES_ATTRIBUTE: Final = "qr-attributes"
BODY_ATTRIBUTE: Final = "qr-body"
META_ATTRIBUTE: Final = "qr-meta"
#: The SQS body of a message whose real body travels in ``qr-body``.
BINARY_BODY: Final = "."
#: The most the adapter adds to a message with only a body: the ``qr-body`` attribute with
#: its placeholder body, and ``qr-id`` with a 128-character id.
METADATA_RESERVE: Final = (
    len(BINARY_BODY) + len(BODY_ATTRIBUTE) + len("Binary") + len(ID_ATTRIBUTE) + len("String") + 128
)
#: Separates keys and values in ``qr-attributes`` (a byte UTF-8 never contains).
ATTRIBUTE_SEPARATOR: Final = b"\xff"
#: The most ``qr-meta`` adds besides the correlation id's characters: its name and type, the
#: JSON keys, a hashed session id's 128 characters of up to 4 bytes, a TTL of 20 digits.
_META_RESERVE: Final = (
    len(META_ATTRIBUTE)
    + len("String")
    + len('{"correlation_id":"","session_id":"","ttl_us":}')
    + 128 * 4
    + 20
)
#: What one counted byte can cost at most once encoded, cheapest last (see `guaranteed_size`):
#: correlation id characters (4 UTF-8 bytes), bytes of the 128 one-byte attribute keys (key
#: and two separators), of the 18,304 two-byte keys (2 bytes per byte), then any key (5/3).
_WORST_COSTS: Final = ((128, 4.0), (128, 3.0), (2 * 18_304, 2.0), (None, 5 / 3))
#: Description of a message that SQS's redrive policy moved (it carries no reason of ours).
REDRIVE_DESCRIPTION: Final = "moved by the queue's redrive policy after max_delivery_count receives"

#: One SQS message attribute as boto3 takes it.
SqsAttribute = dict[str, Any]

# Characters SQS accepts in bodies and String attribute values
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(slots=True)
class Outgoing:
    """A message as SQS takes it, with its size as SQS counts it."""

    body: str
    attributes: dict[str, SqsAttribute]
    size: int


@dataclass(slots=True)
class Incoming:
    """A received SQS message, decoded, with what settling and re-sending it need."""

    message: Message
    sqs_id: str
    receipt_handle: str
    receive_count: int
    #: SentTimestamp, in epoch seconds.
    enqueued: float
    group_id: str | None
    sequence_number: int | None
    dead_letter_reason: str | None
    dead_letter_description: str | None
    raw_body: str
    raw_attributes: dict[str, SqsAttribute]


def encode(message: Message, *, fifo: bool) -> Outgoing:
    """``message`` (already validated) as an SQS body and attributes, with its SQS size."""
    attributes: dict[str, SqsAttribute] = {
        ID_ATTRIBUTE: {"DataType": "String", "StringValue": message.message_id}
    }
    body = _text_body(message.body)
    if body is None:
        body = BINARY_BODY
        attributes[BODY_ATTRIBUTE] = {"DataType": "Binary", "BinaryValue": message.body}
    if message.attributes:
        attributes[ATTRIBUTES_ATTRIBUTE] = {
            "DataType": "Binary",
            "BinaryValue": ATTRIBUTE_SEPARATOR.join(
                part.encode("utf-8", "surrogatepass")
                for pair in message.attributes.items()
                for part in pair
            ),
        }
    meta: dict[str, object] = {}
    if message.correlation_id is not None:
        meta["correlation_id"] = message.correlation_id
    session_id = message.session_id
    if session_id is not None and (not fifo or group_id(session_id) != session_id):
        meta["session_id"] = session_id
    if message.time_to_live is not None:
        meta["ttl_us"] = message.time_to_live // timedelta(microseconds=1)
    if meta:
        attributes[META_ATTRIBUTE] = _json_attribute(meta)
    return Outgoing(body, attributes, sqs_size(body, attributes))


def with_dead_letter(
    incoming: Incoming,
    reason: str | None,
    description: str | None,
    *,
    max_size: int,
) -> Outgoing:
    """``incoming`` re-encoded for its dead-letter queue, with ``reason``/``description``.

    The body and every attribute are kept as received. Should the reason push the message
    over ``max_size``, the description and then the reason are shortened to fit. Both keys are
    always written (``null`` when absent): their presence marks an explicit dead-lettering.
    """
    attributes = dict(incoming.raw_attributes)
    meta = _read_json(attributes.get(META_ATTRIBUTE))
    meta = dict(meta) if isinstance(meta, dict) else {}
    texts = {"dead_letter_reason": reason, "dead_letter_description": description}
    while True:
        meta.update(texts)
        attributes[META_ATTRIBUTE] = _json_attribute(meta)
        size = sqs_size(incoming.raw_body, attributes)
        excess = size - max_size
        shorten = next((key for key in reversed(texts) if texts[key]), None)
        if excess <= 0 or shorten is None:
            # fits, or was at the limit before our texts: SQS has the last word then
            return Outgoing(incoming.raw_body, attributes, size)
        text = texts[shorten]
        assert text is not None
        # every character is at least one byte: dropping `excess` of them is enough
        texts[shorten] = text[: max(0, len(text) - excess)]


def decode(raw: Mapping[str, Any], *, dead_letter_queue: bool) -> Incoming:
    """A received SQS message (``receive_message``'s dict) as an `Incoming`.

    Messages not sent by queue-runtime decode too: the SQS message id becomes the message id
    and their String attributes become attributes. In a dead-letter queue, a message without
    a reason of ours was moved by the redrive policy: reason ``MaxDeliveryCountExceeded``.
    """
    system = raw.get("Attributes") or {}
    raw_attributes = {
        name: _sendable(value) for name, value in (raw.get("MessageAttributes") or {}).items()
    }
    raw_body = raw.get("Body") or ""
    body_attribute = raw_attributes.get(BODY_ATTRIBUTE)
    if body_attribute is not None and body_attribute.get("DataType") == "Binary":
        body = bytes(body_attribute.get("BinaryValue") or b"")
    else:
        body = raw_body.encode("utf-8", "surrogatepass")
    meta = _read_json(raw_attributes.get(META_ATTRIBUTE))
    if not isinstance(meta, dict):
        meta = {}
    id_attribute = raw_attributes.get(ID_ATTRIBUTE)
    message_id = (id_attribute or {}).get("StringValue") or raw["MessageId"]
    group = system.get("MessageGroupId")
    session_id = meta.get("session_id")
    if not isinstance(session_id, str):
        session_id = group
    if ATTRIBUTES_ATTRIBUTE in raw_attributes:
        attributes = _read_attributes(raw_attributes[ATTRIBUTES_ATTRIBUTE])
    elif id_attribute is None:
        attributes = _foreign_attributes(raw_attributes)
    else:
        attributes = {}
    ttl_us = meta.get("ttl_us")
    ttl = timedelta(microseconds=ttl_us) if isinstance(ttl_us, int) and ttl_us > 0 else None
    correlation_id = meta.get("correlation_id")
    reason = meta.get("dead_letter_reason")
    description = meta.get("dead_letter_description")
    if dead_letter_queue and "dead_letter_reason" not in meta:
        reason, description = MAX_DELIVERY_COUNT_EXCEEDED, REDRIVE_DESCRIPTION
    sequence = system.get("SequenceNumber")
    message = Message(
        body,
        session_id,
        frozen_attributes(attributes) if attributes else None,
        correlation_id if isinstance(correlation_id, str) else None,
        message_id,
        ttl,
        None,
    )
    return Incoming(
        message=message,
        sqs_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        receive_count=int(system.get("ApproximateReceiveCount", 1)),
        enqueued=int(system.get("SentTimestamp", 0)) / 1000,
        group_id=group,
        sequence_number=int(sequence) if sequence and str(sequence).isdigit() else None,
        dead_letter_reason=reason if isinstance(reason, str) else None,
        dead_letter_description=description if isinstance(description, str) else None,
        raw_body=raw_body,
        raw_attributes=raw_attributes,
    )


def sqs_size(body: str, attributes: Mapping[str, SqsAttribute]) -> int:
    """A message's size as SQS counts it: body plus each attribute's name, type and value."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode())
        if "BinaryValue" in value:
            size += len(value["BinaryValue"])
        else:
            size += len(value["StringValue"].encode("utf-8", "surrogatepass"))
    return size


def guaranteed_size(max_size: int) -> int:
    """The largest message size by the contract's rule (body + UTF-8 attribute keys and
    values + correlation id characters) whose SQS encoding always fits in ``max_size``.

    The worst case spends the budget where a counted byte costs most once encoded (correlation
    id characters, then many small attributes: 2 separator bytes each, and keys are distinct,
    so only 128 take one byte and 18,304 two), on top of the fixed metadata (``qr-id``, the
    ``qr-body`` placeholder, ``qr-meta`` with a hashed session id, the attribute's name).
    """
    fixed = METADATA_RESERVE + len(ATTRIBUTES_ATTRIBUTE) + len("Binary") + _META_RESERVE
    room = max_size - fixed
    size = 0
    for count, cost in _WORST_COSTS:
        if count is None or room < count * cost:
            return size + max(0, int(room // cost))
        size += count
        room -= int(count * cost)
    raise AssertionError("unreachable: the last cost has no count")


def _read_attributes(attribute: SqsAttribute) -> dict[str, str]:
    """``qr-attributes``: separator-joined UTF-8 (Binary), or JSON of older versions."""
    if attribute.get("DataType") != "Binary":
        attributes = _read_json(attribute)
        return attributes if isinstance(attributes, dict) else {}
    parts = bytes(attribute.get("BinaryValue") or b"").split(ATTRIBUTE_SEPARATOR)
    if len(parts) % 2:
        return {}
    try:
        texts = [part.decode("utf-8", "surrogatepass") for part in parts]
    except UnicodeDecodeError:
        return {}
    return dict(zip(texts[::2], texts[1::2], strict=True))


def _text_body(body: bytes) -> str | None:
    """``body`` as SQS text, or None when it is not UTF-8 of characters SQS allows."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _NOT_SQS_TEXT.search(text) else text


def _json_attribute(value: Mapping[str, object]) -> SqsAttribute:
    """A String attribute holding ``value`` as JSON, in characters SQS allows."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _NOT_SQS_TEXT.search(text):
        # lone surrogates, U+FFFE/U+FFFF: let JSON escape everything outside ASCII
        text = json.dumps(value, separators=(",", ":"))
    return {"DataType": "String", "StringValue": text}


def _read_json(attribute: SqsAttribute | None) -> object:
    if not attribute or "StringValue" not in attribute:
        return None
    try:
        return json.loads(attribute["StringValue"])
    except ValueError:
        return None


def _sendable(value: Mapping[str, Any]) -> SqsAttribute:
    """A received attribute reduced to what ``send_message`` takes."""
    clean: SqsAttribute = {"DataType": value.get("DataType", "String")}
    if "BinaryValue" in value and value["BinaryValue"] is not None:
        clean["BinaryValue"] = value["BinaryValue"]
    else:
        clean["StringValue"] = value.get("StringValue") or ""
    return clean


def _foreign_attributes(raw_attributes: Mapping[str, SqsAttribute]) -> dict[str, str]:
    """The String and Number attributes of a message queue-runtime did not send."""
    return {
        name: value["StringValue"]
        for name, value in raw_attributes.items()
        if not name.startswith(RESERVED_ATTRIBUTE_PREFIX) and "StringValue" in value
    }
