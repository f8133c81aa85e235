"""Peeking: a queue's (or a session's) messages by sequence number, without locking them.

Service Bus's ``$management`` ``peek-message`` operation, through the SDK receiver's
``peek_messages`` (holding its `Link` for each page); pages are read until ``max_messages``
came or the service has no more.
"""

from __future__ import annotations

from ..._logging import get_logger
from ..._messages import ReceivedMessage
from ._codec import decode
from ._errors import translate
from ._link import Link

__all__ = ["peek"]

_log = get_logger("adapters.servicebus")


async def peek(
    link: Link, max_messages: int, from_sequence_number: int, subject: str
) -> list[ReceivedMessage]:
    """Up to ``max_messages`` messages from ``from_sequence_number`` on (inclusive)."""
    # the SDK reads 0 as "after the last message this receiver received": say 1 (the first)
    start = max(1, from_sequence_number)
    found: list[ReceivedMessage] = []
    while len(found) < max_messages:
        _log.debug("peek %s from %d (up to %d)", subject, start, max_messages - len(found))
        async with link:
            with translate("peek", subject):
                page = await link.handler.peek_messages(
                    max_message_count=max_messages - len(found),
                    sequence_number=start,
                    timeout=link.timeout,
                )
        if not page:
            break
        found.extend(decode(m, None, peeked=True) for m in page)
        last = found[-1].sequence_number
        if last is None or last < start:
            break
        start = last + 1
    return found
