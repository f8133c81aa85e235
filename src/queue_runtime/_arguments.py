"""Argument checks every adapter applies the same way at its public edge."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from ._clock import to_seconds
from ._errors import ValidationError
from ._messages import Message, ReceivedMessage
from ._names import QueueName
from .engine import QueueSettings

__all__ = [
    "check_dead_letter_reason",
    "check_max_messages",
    "check_received",
    "check_sequence_number",
    "message_sequence",
    "received_sequence",
    "queue_name",
    "queue_definition",
    "timeout_seconds",
]

_INFINITY = math.inf

#: Longest dead-letter reason or description, in characters.
MAX_DEAD_LETTER_TEXT = 4096


def queue_name(queue: QueueName | str) -> QueueName:
    """A `QueueName` from a name or a str (validated)."""
    return queue if type(queue) is QueueName else QueueName(queue)


def timeout_seconds(timeout: float | timedelta | None, default: float) -> float:
    """Seconds to wait: ``None`` is ``default`` (the client's configured default timeout);
    negative, non-finite or non-numeric is a `ValidationError`."""
    if timeout is None:
        return default
    if (type(timeout) is int or type(timeout) is float) and 0 <= timeout < _INFINITY:
        return timeout
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise ValidationError(f"timeout must be seconds or a timedelta, not {timeout!r}")
    if not 0 <= seconds < _INFINITY:
        raise ValidationError(f"timeout must be a finite, non-negative duration, not {timeout!r}")
    return seconds


def message_sequence(messages: object) -> Sequence[Message]:
    """``messages`` if it is a list or tuple (any `Sequence` but ``str``/``bytes``), else a
    `ValidationError`: a generator would be half consumed before a bad item is found, so
    batches are refused before anything is sent. Items are checked by `validate_message`."""
    return cast("Sequence[Message]", _sequence(messages, "Message"))


def _sequence(value: object, items: str) -> Sequence[Any]:
    """``value`` if it is a `Sequence` other than ``str``/``bytes``, else a `ValidationError`."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray)):
        return value
    raise ValidationError(
        f"expected a sequence (list or tuple) of {items}, not {type(value).__name__}"
    )


def received_sequence(messages: object) -> Sequence[ReceivedMessage]:
    """``messages`` checked for batch settlement: a sequence of settleable `ReceivedMessage`
    (a peeked message has no receipt), else a `ValidationError` before anything is settled."""
    checked = cast("Sequence[object]", _sequence(messages, "ReceivedMessage"))
    for message in checked:
        if not isinstance(message, ReceivedMessage):
            raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
        if message.receipt is None:
            raise ValidationError(
                f"message {message.message_id!r} was peeked, not received: it cannot be settled"
            )
    return cast("Sequence[ReceivedMessage]", checked)


def check_max_messages(max_messages: int) -> int:
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
        raise ValidationError(f"max_messages must be a positive int, not {max_messages!r}")
    return max_messages


def check_sequence_number(value: int | None) -> int:
    """``from_sequence_number`` of a peek: ``None`` (from the start, 0) or an int >= 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"from_sequence_number must be an int >= 0, not {value!r}")
    return value


def check_received(message: object, receipt_type: type[object]) -> object:
    """The receipt of ``message`` if it is a `ReceivedMessage` of this adapter."""
    if not isinstance(message, ReceivedMessage):
        raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
    receipt = message.receipt
    if receipt is None:
        raise ValidationError("this message was peeked, not received: it cannot be settled")
    if not isinstance(receipt, receipt_type):
        raise ValidationError("this message was not received through this adapter")
    return receipt


def queue_definition(
    queue: QueueName | str,
    *,
    requires_session: bool,
    max_delivery_count: int,
    lock_duration: float | timedelta,
    default_message_ttl: float | timedelta | None,
    dead_letter_on_expiration: bool,
) -> tuple[QueueName, QueueSettings]:
    """The queue's name and `QueueSettings` from ``create_queue``'s arguments (validated);
    a dead-letter queue's name is refused: it is created with its queue."""
    name = queue_name(queue)
    if name.is_dead_letter:
        raise ValidationError("dead-letter queues are created with their queue")
    if isinstance(max_delivery_count, bool) or not isinstance(max_delivery_count, int):
        raise ValidationError("max_delivery_count must be an int")
    return name, QueueSettings(
        requires_session=bool(requires_session),
        max_delivery_count=max_delivery_count,
        lock_duration=to_seconds(lock_duration),
        default_message_ttl=None
        if default_message_ttl is None
        else to_seconds(default_message_ttl),
        dead_letter_on_expiration=bool(dead_letter_on_expiration),
    )


def check_dead_letter_reason(reason: str | None, description: str | None) -> None:
    """Dead-letter ``reason`` and ``description``: each ``None`` or a str of at most 4096
    characters, else a `ValidationError`."""
    for name, value in (("reason", reason), ("description", description)):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_DEAD_LETTER_TEXT):
            raise ValidationError(
                f"dead-letter {name} must be a str of at most {MAX_DEAD_LETTER_TEXT} characters"
            )
