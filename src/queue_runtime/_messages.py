"""What is sent (`Message`) and what is received (`ReceivedMessage`).

Both are immutable named tuples with no validation on construction: the hot path stays cheap,
and the rules are checked once, at send time, by `validate_message` with the limits of the
adapter that sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple, NoReturn

from ._errors import ValidationError
from ._names import check_message_id, check_session_id, new_message_id

__all__ = [
    "RESERVED_ATTRIBUTE_PREFIX",
    "FrozenAttributes",
    "Message",
    "NO_ATTRIBUTES",
    "ReceivedMessage",
    "frozen_attributes",
    "validate_message",
]

#: Attribute keys starting with this are reserved for queue-runtime's own use.
RESERVED_ATTRIBUTE_PREFIX: Final = "qr-"
_MAX_ATTRIBUTE_KEY = 256
_ZERO: Final = timedelta(0)


class FrozenAttributes(dict[str, str]):
    """Read-only attributes as stored and delivered: a real ``dict`` (``json.dumps`` and
    ``dict(...)`` work), whose mutators raise so no receiver can change what others read."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("message attributes are read-only; copy them with dict(...)")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[type[FrozenAttributes], tuple[dict[str, str]]]:
        # rebuilt whole (pickle would otherwise replay __setitem__)
        return (FrozenAttributes, (dict(self),))


#: The attributes of a message that has none (shared and read-only).
NO_ATTRIBUTES: Final[Mapping[str, str]] = FrozenAttributes()


class _MessageFields(NamedTuple):
    body: bytes
    session_id: str | None
    attributes: Mapping[str, str]
    correlation_id: str | None
    message_id: str
    time_to_live: timedelta | None
    scheduled_enqueue_time: datetime | None


_FIELD_DOCS: Final = {
    "body": "The payload: non-empty bytes, any byte values.",
    "session_id": "Messages sharing it are processed in order, one at a time (1-128 printable "
    "characters); required on a session queue, else None.",
    "attributes": "String keys (1-256 characters, not starting 'qr-') to string values; "
    "they count toward the size limit.",
    "correlation_id": "Free routing data for the application (at most 128 printable "
    "characters), or None.",
    "message_id": "1-128 printable ASCII characters; generated when not given and kept on "
    "re-sends, so duplicate detection recognises them.",
    "time_to_live": "A positive timedelta after which an undelivered message expires "
    "(None: the queue's default_message_ttl).",
    "scheduled_enqueue_time": "A timezone-aware datetime before which the message is not "
    "delivered (None: at once).",
}
for _name, _doc in _FIELD_DOCS.items():
    getattr(_MessageFields, _name).__doc__ = _doc


class Message(_MessageFields):
    """A message to send: bytes, an optional session, string attributes and routing data.

    ``Message(body, session_id=None, attributes=None, correlation_id=None, message_id=None,
    time_to_live=None, scheduled_enqueue_time=None)``. Immutable (a named tuple: cheap to build
    on the hot path; ``message._replace(body=...)`` makes a changed copy). ``message_id`` is
    generated when absent and kept on retries of the same object, so a provider's duplicate
    detection recognises a re-sent message. The rules are checked when it is sent, against the
    limits of the queue it is sent to (`ValidationError` then, and nothing is sent).

    Fields: ``body``, ``session_id``, ``attributes``, ``correlation_id``, ``message_id``,
    ``time_to_live``, ``scheduled_enqueue_time`` (each documented below).
    """

    __slots__ = ()

    def __new__(
        cls,
        body: bytes,
        session_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        message_id: str | None = None,
        time_to_live: timedelta | None = None,
        scheduled_enqueue_time: datetime | None = None,
    ) -> Message:
        """A message of ``body`` (see the class for each field); no validation happens here."""
        return _new_tuple(
            cls,
            (
                body,
                session_id,
                NO_ATTRIBUTES if attributes is None else attributes,
                correlation_id,
                new_message_id() if message_id is None else message_id,
                time_to_live,
                scheduled_enqueue_time,
            ),
        )


_new_tuple = tuple.__new__


class ReceivedMessage(NamedTuple):
    """A delivered message: the sent `Message` plus delivery data and an opaque receipt.

    Every field of the sent message reads straight through (``received.body``,
    ``received.session_id``, ``received.attributes``, ...). Settle it by passing the object
    itself to ``complete_message``/``abandon_message``/``dead_letter_message`` of the client
    that received it, or, for a session message, of that `SessionClient` (only it may settle
    it). ``enqueued_at`` and ``locked_until`` are UTC datetimes. A peeked message has
    ``receipt=None`` and cannot be settled.
    """

    #: The message as it was sent.
    message: Message
    #: 1 on first delivery, incremented on each redelivery.
    delivery_count: int
    #: When the message was enqueued, in epoch seconds (`enqueued_at` as a datetime).
    enqueued_timestamp: float
    #: When the lock (for a session message: the session lock) lapses, in epoch seconds.
    locked_until_timestamp: float | None
    dead_letter_reason: str | None = None
    dead_letter_description: str | None = None
    #: The provider's ordering number within the queue, where it has one.
    sequence_number: int | None = None
    #: Opaque to callers: what the adapter needs to settle this delivery.
    receipt: object = None

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def session_id(self) -> str | None:
        return self.message.session_id

    @property
    def attributes(self) -> Mapping[str, str]:
        return self.message.attributes

    @property
    def correlation_id(self) -> str | None:
        return self.message.correlation_id

    @property
    def message_id(self) -> str:
        return self.message.message_id

    @property
    def time_to_live(self) -> timedelta | None:
        return self.message.time_to_live

    @property
    def scheduled_enqueue_time(self) -> datetime | None:
        return self.message.scheduled_enqueue_time

    @property
    def enqueued_at(self) -> datetime:
        return datetime.fromtimestamp(self.enqueued_timestamp, UTC)

    @property
    def locked_until(self) -> datetime | None:
        until = self.locked_until_timestamp
        return None if until is None else datetime.fromtimestamp(until, UTC)

    @property
    def settleable(self) -> bool:
        """Whether this delivery can be settled (it was received, not peeked)."""
        return self.receipt is not None

    def to_message(self) -> Message:
        """The message as sent, for re-sending (same id, so duplicate detection applies)."""
        return self.message

    def __repr__(self) -> str:
        return (
            f"ReceivedMessage(message_id={self.message_id!r}, session_id={self.session_id!r}, "
            f"delivery_count={self.delivery_count}, body={self.body[:64]!r})"
        )


_RECEIVED_DOCS: Final = {
    "message": "The message as it was sent (its fields also read through this object).",
    "delivery_count": "1 on first delivery, +1 on each redelivery (a peek shows the "
    "deliveries so far, 0 if none).",
    "enqueued_timestamp": "When the message was enqueued, in epoch seconds (enqueued_at "
    "as a datetime).",
    "locked_until_timestamp": "When the lock lapses (for a session message: the session "
    "lock), in epoch seconds; None when not locked (peek).",
    "dead_letter_reason": "Why it was dead-lettered (messages read from a dead-letter queue).",
    "dead_letter_description": "The longer explanation given with dead_letter_reason.",
    "sequence_number": "The provider's ordering number within the queue, where it has one.",
    "receipt": "Opaque: what the adapter needs to settle this delivery (None once peeked).",
}
for _name, _doc in _RECEIVED_DOCS.items():
    getattr(ReceivedMessage, _name).__doc__ = _doc


def validate_message(
    message: Message,
    *,
    max_size: int,
    requires_session: bool | None,
) -> int:
    """Check ``message`` against the contract; return its size in bytes (body + attributes).

    ``requires_session`` is the target queue's (None: unknown, the provider checks). Raises
    `ValidationError` naming the first broken rule.
    """
    if type(message) is not Message:
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
        if requires_session is False:
            # nothing would keep the session's order: refused, never silently ignored
            raise ValidationError(
                "this queue has no sessions: send without a session_id, or create the queue "
                "with requires_session=True"
            )
    elif requires_session:
        raise ValidationError("this queue requires sessions: the message needs a session_id")
    if message.attributes:
        size += _attributes_size(message.attributes)
    correlation_id = message.correlation_id
    if correlation_id is not None:
        if (
            type(correlation_id) is not str
            or len(correlation_id) > 128
            or not correlation_id.isprintable()
        ):
            raise ValidationError("correlation_id must be at most 128 printable characters")
        size += len(correlation_id)
    message_id = message.message_id
    if not (
        type(message_id) is str
        and 0 < len(message_id) <= 128
        and message_id.isascii()
        and message_id.isprintable()
    ):
        check_message_id(message_id)
    ttl = message.time_to_live
    if ttl is not None and (type(ttl) is not timedelta or ttl <= _ZERO):
        raise ValidationError("time_to_live must be a positive timedelta")
    when = message.scheduled_enqueue_time
    if when is not None and (not isinstance(when, datetime) or when.tzinfo is None):
        raise ValidationError("scheduled_enqueue_time must be a timezone-aware datetime")
    if size > max_size:
        raise ValidationError(f"message is {size} bytes; this queue takes at most {max_size}")
    return size


def frozen_attributes(attributes: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy of ``attributes``, safe to share between sender, store and receivers."""
    return FrozenAttributes(attributes)


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
        try:
            size += len(key.encode()) + len(value.encode())
        except UnicodeEncodeError:
            raise ValidationError(
                f"attribute {key!r}: keys and values must be encodable as UTF-8"
            ) from None
    return size
