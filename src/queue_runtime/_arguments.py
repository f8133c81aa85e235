"""Argument checks every adapter applies the same way at its public edge."""

from __future__ import annotations

from datetime import timedelta

from ._errors import ValidationError
from ._messages import ReceivedMessage
from ._names import QueueName

__all__ = ["check_max_messages", "check_received", "queue_name", "timeout_seconds"]


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
