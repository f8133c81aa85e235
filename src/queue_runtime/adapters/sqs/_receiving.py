"""Receiving: the poller that feeds the process-wide registry, and deliveries from it.

At most one ``ReceiveMessage`` per queue is in flight in the process; whatever it brings is
filed in the registry (`._registry`) for whoever waits for it. Waits of a second or more
long-poll (up to 20 s); shorter waits poll a few times; ``timeout=0`` still makes one poll.

A poll asks for no more messages than its caller wants (one to find a session): SQS counts a
receive for every message it hands out, also one the process gives back unseen, and that
count outlives the process (a worker stopped twice would otherwise see messages it never
handled dead-lettered by the redrive policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Final, TypeVar

from ..._errors import QueueError, QueueNotFound, SessionLockLost, ValidationError
from ..._messages import Message, ReceivedMessage
from ..._names import QueueName
from ._batches import MAX_BATCH
from ._codec import Incoming, decode
from ._connection import LOG, LONG_POLL, Ids, SqsConnection, queue_of
from ._errors import translate_errors
from ._queues import QueueDirectory, QueueInfo
from ._registry import Entry, Group, Lease, QueueState
from ._settlement import Doomed, Receipt, Settler, entry_ids

__all__ = ["Receiver"]

#: Pause between short polls while a wait of less than a second runs out.
_SHORT_POLL_PAUSE: Final = 0.25
_SYSTEM_ATTRIBUTES: Final = [
    "ApproximateReceiveCount",
    "SentTimestamp",
    "MessageGroupId",
    "SequenceNumber",
]

_R = TypeVar("_R")


class Receiver:
    """Receives of one client: from queues without sessions, into sessions, and the waits
    of ``accept_session``. It is the client's identity in the registry: what its polls
    bring is held for it, and its sessions' leases name it as owner."""

    def __init__(self, connection: SqsConnection, queues: QueueDirectory, settler: Settler) -> None:
        self._connection = connection
        self._queues = queues
        self._settler = settler

    async def receive(
        self, name: QueueName, max_messages: int, wait: float
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` of a queue without sessions (or a dead-letter queue)."""
        info = await self._queues.info(name)
        dead_letter = name.is_dead_letter
        if dead_letter:
            if info.dead_letter_url is None or info.dead_letter_state is None:
                raise QueueNotFound(f"queue {str(info.name)!r} has no dead-letter queue")
            state, url = info.dead_letter_state, info.dead_letter_url
        else:
            if info.fifo:
                raise ValidationError(
                    f"queue {str(name)!r} requires sessions: use accept_session to receive from it"
                )
            state, url = info.state, info.url
        entries = await self.wait(
            info,
            state,
            url,
            dead_letter,
            lambda: _something(state.take_plain(max_messages)),
            poll_max=min(max_messages, MAX_BATCH),
            deadline=asyncio.get_running_loop().time() + wait,
        )
        return [self.received(info, state, url, dead_letter, entry) for entry in entries or ()]

    async def claim_any(self, info: QueueInfo, wait: float) -> tuple[Lease, list[Entry]] | None:
        """Lease the next available session (group) of ``info``'s queue, waiting up to
        ``wait`` seconds; with the held messages whose visibility must cover the lease."""
        state, seconds = info.state, info.settings.lock_seconds
        return await self.wait(
            info,
            state,
            info.url,
            False,
            lambda: _claimed(state.claim_next(functools.partial(_lease_for, state, seconds, self))),
            poll_max=1,  # a group is found by one message: fetch no more than that (see below)
            deadline=asyncio.get_running_loop().time() + wait,
        )

    async def receive_session(
        self,
        info: QueueInfo,
        check: Callable[[], Lease],
        max_messages: int,
        wait: float,
    ) -> list[ReceivedMessage]:
        """The session's next messages in order, waiting up to ``wait`` seconds (and no
        longer than the lease, unless it is renewed meanwhile). ``check`` is the session's:
        its lease, or `SessionLockLost` / `ClientClosed`."""
        lease = check()
        state = info.state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            # a wait outliving the lease ends with it (loop time is monotonic time); a renewal
            # meanwhile lets it go on
            until = lease.until
            entries = await self.wait(
                info,
                state,
                info.url,
                False,
                lambda: _something(state.take_session(lease, max_messages)),
                poll_max=min(max_messages, MAX_BATCH),
                deadline=min(deadline, until),
            )
            if entries:
                return [self.received(info, state, info.url, False, e) for e in entries]
            check()
            if lease.until - time.monotonic() < 0.01:
                raise SessionLockLost(f"the lock on session {lease.session_id!r} expired")
            if lease.until == until or loop.time() >= deadline:
                return []

    def received(
        self, info: QueueInfo, state: QueueState, url: str, dead_letter: bool, entry: Entry
    ) -> ReceivedMessage:
        incoming = entry.incoming
        lease = entry.lease
        return ReceivedMessage(
            incoming.message,
            entry.count,
            incoming.enqueued,
            lease.until_wall if lease is not None else entry.deadline_wall,
            incoming.dead_letter_reason,
            incoming.dead_letter_description,
            incoming.sequence_number,
            Receipt(self._connection.endpoint, info, state, url, dead_letter, entry),
        )

    async def wait(
        self,
        info: QueueInfo,
        state: QueueState,
        url: str,
        dead_letter: bool,
        take: Callable[[], tuple[_R, Doomed] | None],
        *,
        poll_max: int,
        deadline: float,
    ) -> _R | None:
        """Wait until ``take()`` finds something in the registry, polling SQS meanwhile.

        At most one poll per queue is in flight in the process; a waiter whose own poll is
        not running waits for the registry to be fed by another's. Long polls are used for
        waits of a second or more; shorter waits poll a few times. ``deadline`` is in loop
        time; at least one poll is made, so ``timeout=0`` still looks.
        """
        loop = asyncio.get_running_loop()
        own: Future[None] | None = None
        own_seconds = 0
        polled = False
        pace_until = 0.0
        while True:
            now = loop.time()
            remaining = deadline - now
            start_poll = None
            if own is None and now >= pace_until and (remaining > 0 or not polled):
                own_seconds = int(min(remaining, LONG_POLL)) if remaining >= 1 else 0
                start_poll = functools.partial(
                    self._submit_poll, state, url, dead_letter, poll_max, own_seconds
                )
            got, waiter, started = state.take_or_wait(take, start_poll)
            if got is not None:
                result, doomed = got
                if doomed:
                    await self._settler.dispose(info, state, url, doomed)
                if result:
                    return result
                continue
            if started is not None:
                own = started
                if own_seconds == 0:
                    pace_until = now + _SHORT_POLL_PAUSE
            try:
                if own is not None and not own.done():
                    if remaining > 0:
                        await waiter.wait(remaining)  # type: ignore[union-attr]
                    elif own_seconds == 0:
                        await waiter.wait(None)  # type: ignore[union-attr]
                    else:
                        return None
                elif own is None:
                    if remaining <= 0 and polled:
                        return None
                    if remaining <= 0 and state.polling is not None:
                        # another waiter's long poll is out: SQS has nothing visible now
                        return None
                    pause = pace_until - now if pace_until > now else remaining
                    await waiter.wait(max(0.0, min(remaining, pause)))  # type: ignore[union-attr]
            finally:
                state.remove_waiter(waiter)
            if own is not None and own.done():
                exc = own.exception()
                own, polled = None, True
                if exc is not None:
                    if isinstance(exc, QueueNotFound):
                        self._queues.evict(info.name)
                    raise exc

    def _submit_poll(
        self, state: QueueState, url: str, dead_letter: bool, max_messages: int, seconds: int
    ) -> Future[None]:
        return self._connection.submit(self._poll, state, url, dead_letter, max_messages, seconds)

    def _poll(
        self, state: QueueState, url: str, dead_letter: bool, max_messages: int, seconds: int
    ) -> None:
        """One ReceiveMessage (in a pool thread); what it brings is filed in the registry."""
        settings = state.settings
        assert settings is not None
        connection = self._connection
        log = _log_poll(url, max_messages, seconds)
        start, start_wall = time.monotonic(), time.time()
        with translate_errors("ReceiveMessage"):
            response = connection.poll_sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=seconds,
                VisibilityTimeout=settings.lock_seconds,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=_SYSTEM_ATTRIBUTES,
            )
        elapsed = time.monotonic() - start
        if elapsed > 1.0:
            # a long poll that waited: the messages were taken near its end
            start += elapsed - 1.0
            start_wall += elapsed - 1.0
        received = [
            decode(raw, dead_letter_queue=dead_letter) for raw in response.get("Messages") or ()
        ]
        if log is not None:
            log(received)
        state.deposit(received, start, start_wall, self)
        if connection.closing:
            # the client is closing and keeps nothing: back to SQS with them, in order
            released = state.release_all(self)
            if released and LOG.isEnabledFor(logging.DEBUG):
                LOG.debug(
                    "SQS ChangeMessageVisibilityBatch on %s (closing) %s",
                    queue_of(url),
                    entry_ids(released),
                )
            with contextlib.suppress(QueueError, RuntimeError):
                for first in range(0, len(released), MAX_BATCH):
                    connection.invoke(
                        "ChangeMessageVisibilityBatch",
                        {
                            "QueueUrl": url,
                            "Entries": [
                                {
                                    "Id": str(i),
                                    "ReceiptHandle": entry.incoming.receipt_handle,
                                    "VisibilityTimeout": 0,
                                }
                                for i, entry in enumerate(released[first : first + MAX_BATCH])
                            ],
                        },
                    )


def _log_poll(url: str, max_messages: int, seconds: int) -> Callable[[list[Incoming]], None] | None:
    """Log a poll at DEBUG (when enabled); returns what logs the messages it brought."""
    if not LOG.isEnabledFor(logging.DEBUG):
        return None
    queue = queue_of(url)
    LOG.debug("SQS ReceiveMessage on %s max=%d wait=%ds", queue, max_messages, seconds)

    def brought(received: list[Incoming]) -> None:
        LOG.debug("SQS ReceiveMessage on %s brought %s", queue, Ids(received, _message_of))

    return brought


def _message_of(incoming: Incoming) -> Message:
    return incoming.message


def _lease_for(state: QueueState, seconds: int, owner: object, group: Group) -> Lease:
    session_id = group.entries[0].incoming.message.session_id or group.id
    return state.new_lease(group.id, session_id, seconds, owner)


def _something(
    taken: tuple[list[Entry], Doomed],
) -> tuple[list[Entry], Doomed] | None:
    delivered, doomed = taken
    return taken if delivered or doomed else None


def _claimed(
    claimed: tuple[Lease | None, list[Entry], Doomed],
) -> tuple[tuple[Lease, list[Entry]] | None, Doomed] | None:
    lease, extend, doomed = claimed
    if lease is None and not doomed:
        return None
    return (lease, extend) if lease is not None else None, doomed
