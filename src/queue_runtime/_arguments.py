"""Argument checks every adapter applies the same way at its public edge."""

from __future__ import annotations

from datetime import timedelta

from ._clock import to_seconds
from ._errors import ValidationError
from ._messages import ReceivedMessage
from ._names import QueueName
from .engine import QueueSettings

__all__ = [
    "check_dead_letter_reason",
    "check_max_messages",
    "check_received",
    "queue_name",
    "queue_definition",
    "timeout_seconds",
]

#: Longest dead-letter reason or description, in characters.
MAX_DEAD_LETTER_TEXT = 4096


def queue_name(queue: QueueName | str) -> QueueName:
    """A `QueueName` from a name or a str (validated)."""
    return queue if type(queue) is QueueName else QueueName(queue)


def timeout_seconds(timeout: float | timedelta | None, default: float) -> float:
    """Seconds to wait: ``None`` is ``default``; negative or non-numeric is a `ValidationError`."""
    if timeout is None:
        return default
    if (type(timeout) is int or type(timeout) is float) and timeout >= 0:
        return timeout
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise ValidationError(f"timeout must be seconds or a timedelta, not {timeout!r}")
    if not seconds >= 0:
        raise ValidationError(f"timeout must not be negative, not {timeout!r}")
    return seconds


def check_max_messages(max_messages: int) -> int:
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1:
        raise ValidationError(f"max_messages must be a positive int, not {max_messages!r}")
    return max_messages


def check_received(message: object, receipt_type: type[object]) -> object:
    """The receipt of ``message`` if it is a `ReceivedMessage` of this adapter."""
    if not isinstance(message, ReceivedMessage):
        raise ValidationError(f"expected a ReceivedMessage, not {type(message).__name__}")
    receipt = message.receipt
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
