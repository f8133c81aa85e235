"""Messages to rows and rows back to messages, exactly (ids, attributes, TTL, schedule).

Attributes are stored as JSON text (NUL and other control characters escaped, so PostgreSQL's
``TEXT`` takes them); a time to live as whole microseconds and a scheduled time as ISO text,
so both come back equal to what was sent, time zone included.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ..._messages import NO_ATTRIBUTES, FrozenAttributes, Message, ReceivedMessage

__all__ = ["Receipt", "message_row", "received", "peeked"]

_new_tuple = tuple.__new__
_MICROSECOND = timedelta(microseconds=1)


class Receipt(NamedTuple):
    """What settling one delivery needs; ``lease`` is the session lease it came under (or 0)."""

    store: str
    queue: str
    message_id: str
    queue_id: int
    seq: int
    token: int
    lease: int
    session_id: str | None


def message_row(
    queue_id: int,
    partition: str,
    message: Message,
    now: float,
    default_ttl: float | None,
    blob: Callable[[bytes], Any],
    unique_id: int,
) -> tuple[Any, ...]:
    """The ``insert_message`` parameters of a validated message (``blob`` passes the body
    the way the driver binds it fastest; ``unique_id`` 1 for an id the unique index holds)."""
    attributes = message.attributes
    ttl = message.time_to_live
    when = message.scheduled_enqueue_time
    enqueued_at = now
    if when is not None and (stamp := when.timestamp()) > now:
        enqueued_at = stamp
    ttl_seconds = ttl.total_seconds() if ttl is not None else default_ttl
    return (
        queue_id,
        partition,
        message.message_id,
        unique_id,
        blob(message.body),
        json.dumps(dict(attributes), separators=(",", ":")) if attributes else None,
        message.correlation_id,
        message.session_id,
        None if ttl is None else ttl // _MICROSECOND,
        None if when is None else when.isoformat(),
        enqueued_at,
        enqueued_at,
        None if ttl_seconds is None else enqueued_at + ttl_seconds,
    )


def _message(row: Sequence[Any]) -> Message:
    attributes = row[3]
    ttl = row[6]
    when = row[7]
    body = row[2]
    return _new_tuple(
        Message,
        (
            body if type(body) is bytes else bytes(body),
            row[5],
            NO_ATTRIBUTES if attributes is None else FrozenAttributes(json.loads(attributes)),
            row[4],
            row[1],
            None if ttl is None else timedelta(microseconds=ttl),
            None if when is None else datetime.fromisoformat(when),
        ),
    )


def _delivered(row: Sequence[Any], receipt: Receipt | None) -> ReceivedMessage:
    until = row[10]
    return _new_tuple(
        ReceivedMessage,
        (
            _message(row),
            row[9],
            row[8],
            until if receipt is not None else (until or None),
            row[11],
            row[12],
            row[0],
            receipt,
        ),
    )


def received(
    rows: Sequence[Sequence[Any]], store: str, queue: str, queue_id: int, token: int, lease: int
) -> list[ReceivedMessage]:
    """Delivered rows (`MESSAGE_COLUMNS`) as received messages, in sequence order."""
    ordered = sorted(rows, key=lambda row: row[0]) if len(rows) > 1 else rows
    return [
        _delivered(
            row,
            _new_tuple(Receipt, (store, queue, row[1], queue_id, row[0], token, lease, row[5])),
        )
        for row in ordered
    ]


def peeked(rows: Sequence[Sequence[Any]]) -> list[ReceivedMessage]:
    """Peeked rows as received messages without a receipt (they cannot be settled)."""
    return [_delivered(row, None) for row in rows]
