"""Validated identifiers: queue names, session ids and message ids.

Each is a ``str`` subclass, so it compares, hashes and prints like the string it holds, and
validation happens once, when it is made.
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Final

from ._errors import ValidationError

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "MessageId",
    "QueueName",
    "SessionId",
    "id_prefix",
    "new_message_id",
]

#: How a dead-letter queue's name ends (Service Bus's own convention).
DEAD_LETTER_SUFFIX: Final = "/$DeadLetterQueue"

_QUEUE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,258}[A-Za-z0-9])?")
_MAX_QUEUE_NAME = 260


class QueueName(str):
    """A queue's name: 1-260 of ``A-Z a-z 0-9 . _ -``, starting and ending alphanumeric.

    ``orders.fifo`` is valid. ``name.dead_letter`` names the queue's dead-letter queue
    (``orders/$DeadLetterQueue``); a dead-letter queue has none of its own.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> QueueName:
        if isinstance(value, QueueName):
            return value
        if not isinstance(value, str):
            raise ValidationError(f"queue name must be a str, not {type(value).__name__}")
        base = value[: -len(DEAD_LETTER_SUFFIX)] if value.endswith(DEAD_LETTER_SUFFIX) else value
        if not base:
            raise ValidationError("queue name must not be empty")
        if len(base) > _MAX_QUEUE_NAME or _QUEUE_NAME.fullmatch(base) is None:
            raise ValidationError(
                f"invalid queue name {value!r}: use 1-{_MAX_QUEUE_NAME} characters of "
                "A-Z a-z 0-9 . _ -, starting and ending with a letter or digit"
            )
        return super().__new__(cls, value)

    @property
    def is_dead_letter(self) -> bool:
        """Whether this names a dead-letter queue."""
        return self.endswith(DEAD_LETTER_SUFFIX)

    @property
    def dead_letter(self) -> QueueName:
        """The dead-letter queue of this queue."""
        if self.is_dead_letter:
            raise ValidationError(f"{self!r} is a dead-letter queue; it has no dead-letter queue")
        return QueueName(self + DEAD_LETTER_SUFFIX)

    @property
    def parent(self) -> QueueName:
        """The queue itself, or for a dead-letter queue the queue it belongs to."""
        return QueueName(self[: -len(DEAD_LETTER_SUFFIX)]) if self.is_dead_letter else self

    def __repr__(self) -> str:
        return f"QueueName({str(self)!r})"


class SessionId(str):
    """A session id: 1-128 printable characters (for example ``repo/pr-42``)."""

    __slots__ = ()

    def __new__(cls, value: str) -> SessionId:
        if isinstance(value, SessionId):
            return value
        check_session_id(value)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"SessionId({str(self)!r})"


def check_session_id(value: object) -> str:
    """Return ``value`` if it is a valid session id, else raise ``ValidationError``."""
    if not isinstance(value, str):
        raise ValidationError(f"session id must be a str, not {type(value).__name__}")
    if not 0 < len(value) <= 128 or not value.isprintable():
        raise ValidationError(f"invalid session id {value!r}: use 1-128 printable characters")
    return value


class MessageId(str):
    """A message id: 1-128 printable ASCII characters; generated when a message has none."""

    __slots__ = ()

    def __new__(cls, value: str) -> MessageId:
        if isinstance(value, MessageId):
            return value
        check_message_id(value)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return f"MessageId({str(self)!r})"


def check_message_id(value: object) -> str:
    """Return ``value`` if it is a valid message id, else raise ``ValidationError``."""
    if not isinstance(value, str):
        raise ValidationError(f"message id must be a str, not {type(value).__name__}")
    if not 0 < len(value) <= 128 or not value.isascii() or not value.isprintable():
        raise ValidationError(f"invalid message id {value!r}: use 1-128 printable ASCII characters")
    return value


# A random per-process prefix and a counter: unique across processes (renewed in a forked
# child, so prefork workers never share it) and several times cheaper than uuid4.
_id_prefix = os.urandom(8).hex() + "-"
_id_counter = itertools.count(1)


def _renew_id_source() -> None:
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex() + "-"
    _id_counter = itertools.count(1)


os.register_at_fork(after_in_child=_renew_id_source)


def new_message_id() -> str:
    """A fresh, globally unique message id."""
    return f"{_id_prefix}{next(_id_counter)}"


def id_prefix() -> str:
    """How every id `new_message_id` makes in this process starts (then a number counting up
    from 1); another process's, and a forked child's, differ."""
    return _id_prefix
