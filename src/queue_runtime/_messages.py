"""What is sent (`Message`) and what is received (`ReceivedMessage`).

Both are slotted, frozen dataclasses with no per-message validation on construction: the hot
path stays cheap, and the rules are checked once, at send time, by `validate_message` with the
limits of the adapter that sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from ._errors import ValidationError
from ._names import check_message_id, check_session_id, new_message_id

__all__ = ["RESERVED_ATTRIBUTE_PREFIX", "Message", "ReceivedMessage", "validate_message"]

#: Attribute keys starting with this are reserved for queue-runtime's own use.
RESERVED_ATTRIBUTE_PREFIX: Final = "qr-"
_MAX_ATTRIBUTE_KEY = 256


@dataclass(frozen=True, slots=True)
class Message:
    """A message to send: bytes, an optional session, string attributes and routing data.

    ``message_id`` is generated when absent and kept on retries of the same object, so a
    provider's duplicate detection can recognise a re-sent message.
    """

    body: bytes
    session_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    correlation_id: str | None = None
    message_id: str = field(default_factory=new_message_id)
    time_to_live: timedelta | None = None
    scheduled_enqueue_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A delivered message: the sent fields plus delivery data and an opaque settlement receipt.

    Settle it by passing the object itself to ``complete_message``/``abandon_message``/
    ``dead_letter_message`` of the client (or session) that received it.
    """

    body: bytes
    session_id: str | None
    attributes: Mapping[str, str]
    correlation_id: str | None
    message_id: str
    time_to_live: timedelta | None
    scheduled_enqueue_time: datetime | None
    #: 1 on first delivery, incremented on each redelivery.
    delivery_count: int
    enqueued_at: datetime
    #: When the lock (for a session message: the session lock) lapses.
    locked_until: datetime | None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    #: The provider's ordering number within the queue, where it has one.
    sequence_number: int | None = None
    #: Opaque to callers: what the adapter needs to settle this delivery.
    receipt: object = field(default=None, repr=False, compare=False)

    def to_message(self) -> Message:
        """A new `Message` with the same body, session, attributes and ids (for re-sending)."""
        return Message(
            self.body,
            session_id=self.session_id,
            attributes=dict(self.attributes),
            correlation_id=self.correlation_id,
            message_id=self.message_id,
            time_to_live=self.time_to_live,
        )


def validate_message(
    message: Message,
    *,
    max_size: int,
    requires_session: bool,
) -> int:
    """Check ``message`` against the contract; return its size in bytes (body + attributes).

    Raises `ValidationError` naming the first broken rule.
    """
    if not isinstance(message, Message):
        raise ValidationError(f"expected a Message, not {type(message).__name__}")
    body = message.body
    if type(body) is not bytes:
        raise ValidationError(f"message body must be bytes, not {type(body).__name__}")
    if not body:
        raise ValidationError("message body must not be empty")
    size = len(body)
    session_id = message.session_id
    if session_id is not None:
        check_session_id(session_id)
    elif requires_session:
        raise ValidationError("this queue requires sessions: the message needs a session_id")
    attributes = message.attributes
    if attributes:
        size += _attributes_size(attributes)
    if message.correlation_id is not None:
        correlation_id = message.correlation_id
        if not isinstance(correlation_id, str) or len(correlation_id) > 128:
            raise ValidationError("correlation_id must be a str of at most 128 characters")
        size += len(correlation_id)
    check_message_id(message.message_id)
    ttl = message.time_to_live
    if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
        raise ValidationError("time_to_live must be a positive timedelta")
    when = message.scheduled_enqueue_time
    if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
        raise ValidationError("scheduled_enqueue_time must be a timezone-aware datetime")
    if size > max_size:
        raise ValidationError(f"message is {size} bytes; this queue takes at most {max_size}")
    return size


def _attributes_size(attributes: Mapping[str, str]) -> int:
    if not isinstance(attributes, Mapping):
        raise ValidationError("attributes must be a mapping of str to str")
    size = 0
    for key, value in attributes.items():
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_ATTRIBUTE_KEY:
            raise ValidationError(f"attribute key {key!r}: use a str of 1-256 characters")
        if key.startswith(RESERVED_ATTRIBUTE_PREFIX):
            raise ValidationError(f"attribute key {key!r}: keys starting 'qr-' are reserved")
        if not isinstance(value, str):
            raise ValidationError(f"attribute {key!r}: value must be a str")
        size += len(key.encode()) + len(value.encode())
    return size
