"""SQS names: queue and dead-letter queue names, message group ids and deduplication ids.

SQS takes 1-80 characters of ``A-Z a-z 0-9 _ -`` for a queue name (a FIFO queue's name ends in
``.fifo``, counted in the 80), and 1-128 characters of printable ASCII without space for group
and deduplication ids. Everything here is pure: no I/O, no boto3.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from ..._errors import ValidationError
from ..._names import QueueName

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "FIFO_SUFFIX",
    "HASHED_ID_PREFIX",
    "MAX_QUEUE_NAME",
    "SqsNames",
    "candidate_names",
    "dead_letter_dedup_id",
    "dedup_id",
    "group_id",
    "sqs_names",
]

FIFO_SUFFIX: Final = ".fifo"
#: ``orders`` -> ``orders-dlq`` (``orders.fifo`` -> ``orders-dlq.fifo``).
DEAD_LETTER_SUFFIX: Final = "-dlq"
MAX_QUEUE_NAME: Final = 80
#: Marks an id that is the SHA-256 of a value SQS cannot take as it is.
HASHED_ID_PREFIX: Final = "qr-sha256:"

_STEM = re.compile(r"[A-Za-z0-9_-]+")
# SQS's alphabet for MessageGroupId and MessageDeduplicationId: alphanumerics and punctuation
_SQS_ID = re.compile(r"[!-~]{1,128}")


@dataclass(frozen=True, slots=True)
class SqsNames:
    """The SQS names behind one of our queues: the queue and its dead-letter queue."""

    queue: str
    dead_letter: str
    fifo: bool


def sqs_names(name: QueueName, *, fifo: bool) -> SqsNames:
    """The SQS names of queue ``name`` as a FIFO (session) or a standard queue.

    Raises `ValidationError` for a name SQS cannot take: other characters than
    ``A-Z a-z 0-9 _ -``, a ``.fifo`` suffix on a standard queue, or more than 80 characters
    once ``-dlq`` (and ``.fifo``) are added.
    """
    if name.is_dead_letter:
        raise ValidationError(f"{name!r} is a dead-letter queue; it is named after its queue")
    stem = name[: -len(FIFO_SUFFIX)] if name.endswith(FIFO_SUFFIX) else str(name)
    if name.endswith(FIFO_SUFFIX) and not fifo:
        raise ValidationError(
            f"queue name {str(name)!r}: on SQS only session (FIFO) queues end in '.fifo'"
        )
    if _STEM.fullmatch(stem) is None:
        raise ValidationError(
            f"queue name {str(name)!r}: SQS takes only A-Z a-z 0-9 _ - "
            "(and a '.fifo' suffix on session queues)"
        )
    suffix = FIFO_SUFFIX if fifo else ""
    dead_letter = stem + DEAD_LETTER_SUFFIX + suffix
    if len(dead_letter) > MAX_QUEUE_NAME:
        longest = MAX_QUEUE_NAME - len(DEAD_LETTER_SUFFIX + suffix)
        kind = "session" if fifo else "standard"
        raise ValidationError(
            f"queue name {str(name)!r}: a {kind} queue's name takes at most {longest} "
            f"characters on SQS (its dead-letter queue adds {DEAD_LETTER_SUFFIX + suffix!r})"
        )
    return SqsNames(stem + suffix, dead_letter, fifo)


def candidate_names(name: QueueName) -> list[SqsNames]:
    """Where an existing queue ``name`` may be: as a FIFO queue, then as a standard queue.

    Raises `ValidationError` when SQS can take the name neither way.
    """
    candidates: list[SqsNames] = []
    problem: ValidationError | None = None
    for fifo in (True, False):
        try:
            candidates.append(sqs_names(name, fifo=fifo))
        except ValidationError as exc:
            problem = problem or exc
    if not candidates:
        assert problem is not None
        raise problem
    return candidates


def group_id(session_id: str) -> str:
    """The MessageGroupId of a session: the id itself when SQS takes it, else a hash.

    Session ids may hold any printable character (spaces, non-ASCII); those are hashed, and
    the real id travels in the message's metadata. An id that happens to start with the hash
    prefix is hashed too, so the mapping stays one-to-one.
    """
    if _SQS_ID.fullmatch(session_id) and not session_id.startswith(HASHED_ID_PREFIX):
        return session_id
    return _hashed(session_id)


def dedup_id(message_id: str) -> str:
    """The MessageDeduplicationId of a message: its id when SQS takes it, else a hash."""
    if _SQS_ID.fullmatch(message_id) and not message_id.startswith(HASHED_ID_PREFIX):
        return message_id
    return _hashed(message_id)


def dead_letter_dedup_id(sqs_message_id: str) -> str:
    """The deduplication id of a dead-lettering: one per SQS message, so a retried move is
    not duplicated while a later message re-using the same message id is not swallowed."""
    return hashlib.sha256(f"dead-letter:{sqs_message_id}".encode()).hexdigest()


def _hashed(value: str) -> str:
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return HASHED_ID_PREFIX + digest
