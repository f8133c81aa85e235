"""The commands' work on the public ports, free of click: peeking in pages, receiving from a
queue or a session, redriving and purging dead letters with an interruption that never falls
between the send and the complete of one message."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from queue_runtime import (
    BatchSendError,
    BatchSettleError,
    Message,
    MessageLockLost,
    QueueClient,
    QueueError,
    QueueName,
    ReceivedMessage,
    SessionClient,
    UnsupportedOperation,
    ValidationError,
)

__all__ = [
    "RedriveReport",
    "StopSignal",
    "list_dead_letters",
    "peek",
    "purge",
    "receive",
    "redrive",
    "stop_on_signals",
]

_log = logging.getLogger("queue_runtime.cli")
#: Most messages asked of a provider in one receive or peek call (SQS's own limit).
_PAGE = 10


class StopSignal:
    """Set by SIGINT/SIGTERM; long loops look at it only between whole units of work."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.signal: int | None = None
        self._loop = loop
        self._event = asyncio.Event()

    def requested(self) -> bool:
        return self.signal is not None

    def set(self, signum: int) -> None:
        """Note the signal (safe inside a signal handler: only a flag and a loop wake-up)."""
        self.signal = signum
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        """Return once a stop signal came."""
        await self._event.wait()


@asynccontextmanager
async def stop_on_signals() -> AsyncIterator[StopSignal]:
    """SIGINT and SIGTERM set the returned flag instead of interrupting anything.

    A plain ``signal.signal`` handler, not the loop's: it runs as soon as the signal lands,
    even while the loop never gets to poll (an in-memory adapter's calls complete at once).
    """
    stop = StopSignal(asyncio.get_running_loop())
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: object) -> None:
        if stop.signal is None:
            _log.info("stop requested by signal %d; finishing the current message", signum)
        stop.set(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def peek_unsupported(client: QueueClient) -> UnsupportedOperation:
    return UnsupportedOperation(
        f"{type(client).__name__} cannot peek (its capabilities lack 'peek'): "
        "use 'receive --abandon' to look at messages, which counts a delivery"
    )


async def peek(
    client: QueueClient, queue: QueueName, count: int, *, from_sequence: int | None = None
) -> list[ReceivedMessage]:
    """Up to ``count`` messages in sequence order without locking them, page by page."""
    if "peek" not in client.capabilities:
        raise peek_unsupported(client)
    found: list[ReceivedMessage] = []
    start = from_sequence
    while len(found) < count:
        page = await client.peek_messages(
            queue, max_messages=min(_PAGE, count - len(found)), from_sequence_number=start
        )
        if not page:
            break
        found.extend(page)
        last = page[-1].sequence_number
        if last is None:
            break
        start = last + 1
    return found[:count]


@dataclass
class Received:
    """Messages received by `receive`, and the session that holds them (if any)."""

    messages: list[ReceivedMessage]
    session: SessionClient | None


async def receive(
    client: QueueClient,
    queue: QueueName,
    count: int,
    *,
    session_id: str | None,
    timeout: float,
    complete: bool = False,
) -> Received:
    """Up to ``count`` messages; on a session queue, from the named session or the next one.

    Asks page after page (a provider gives at most 10 at once), each waiting up to
    ``timeout``, until ``count`` or a page comes back empty: a zero wait would stop early where
    a provider answers an instant poll with less than it has (SQS). Where the queue turns out
    to need sessions, the next available session is accepted. With ``complete`` each page is
    completed before the next is asked for (SQS hands out no more of a session while some of
    it is held).
    """
    session: SessionClient | None = None
    if session_id is not None:
        session = await client.accept_session(queue, session_id, timeout=timeout)
    else:
        try:
            first = await client.receive_messages(
                queue, max_messages=min(_PAGE, count), timeout=timeout
            )
        except ValidationError as refused:
            # a session queue refuses a plain receive: take the next session that has messages
            try:
                session = await client.accept_session(queue, timeout=timeout)
            except ValidationError:
                raise refused from None
            if session is None:
                return Received([], None)
        else:
            more = await _more(
                first,
                count,
                lambda n: client.receive_messages(queue, max_messages=n, timeout=timeout),
                client.complete_messages if complete else None,
            )
            return Received(more, None)
    assert session is not None
    held = session
    first = await held.receive_messages(max_messages=min(_PAGE, count), timeout=timeout)
    messages = await _more(
        first,
        count,
        lambda n: held.receive_messages(max_messages=n, timeout=timeout),
        held.complete_messages if complete else None,
    )
    return Received(messages, held)


async def _more(
    first: list[ReceivedMessage],
    count: int,
    receive_more: Callable[[int], Awaitable[list[ReceivedMessage]]],
    settle: Callable[[list[ReceivedMessage]], Awaitable[None]] | None,
) -> list[ReceivedMessage]:
    messages, page = list(first), first
    while page:
        if settle is not None:
            await settle(page)
        if len(messages) >= count:
            break
        page = await receive_more(min(_PAGE, count - len(messages)))
        messages.extend(page)
    return messages


async def list_dead_letters(
    client: QueueClient, queue: QueueName, count: int, *, timeout: float
) -> list[ReceivedMessage]:
    """Up to ``count`` dead letters of ``queue``, peeked where the adapter can peek; else
    received (each page waiting up to ``timeout``) and given straight back, which counts a
    delivery on each but leaves every one where it was."""
    if "peek" in client.capabilities:
        return await peek(client, queue.dead_letter, count)
    got = await receive(client, queue.dead_letter, count, session_id=None, timeout=timeout)
    await _abandon(client, got.messages)
    return sorted(got.messages, key=lambda m: (m.enqueued_timestamp, m.sequence_number or 0))


_REDRIVE_SUFFIX = re.compile(r"~r[0-9a-f]{12}\Z")


def redrive_id(message: ReceivedMessage) -> str:
    """The message id a dead letter goes back with: ``<original id>~r<12 hex>``.

    The suffix is derived from the original id and the dead letter's enqueue time, so it is
    the same for every attempt to redrive this dead letter (a repeat after an interruption is
    deduplicated where the provider deduplicates by id) and differs from the id of the
    original send, whose deduplication window (SQS FIFO: 5 minutes) would otherwise swallow
    the redriven copy. A second redrive replaces the suffix instead of growing the id.
    """
    original = original_id(message.message_id)
    digest = hashlib.sha256(f"{original}|{message.enqueued_timestamp!r}".encode()).hexdigest()
    if len(original) > 110:  # keep within the 128 characters of a message id
        original = hashlib.sha256(original.encode()).hexdigest()[:64]
    return f"{original}~r{digest[:12]}"


def original_id(message_id: str) -> str:
    """``message_id`` without a `redrive_id` suffix."""
    return _REDRIVE_SUFFIX.sub("", message_id)


def resend(message: ReceivedMessage) -> Message:
    """What a dead letter goes back as: body, attributes, session and correlation id intact,
    unscheduled, under its `redrive_id`."""
    return Message(
        message.body,
        session_id=message.session_id,
        attributes=dict(message.attributes),
        correlation_id=message.correlation_id,
        message_id=redrive_id(message),
        time_to_live=message.time_to_live,
    )


@dataclass
class RedriveReport:
    """What a redrive did: ``moved`` are the ids of the copies now in the queue (`redrive_id`),
    whose dead letters are gone."""

    moved: list[str] = field(default_factory=list)
    #: Dead letters (their own ids) sent back whose dead letter could not be completed: they
    #: are in both places and may be redriven again (with the same redrive id, which a
    #: deduplicating provider drops).
    doubled: list[str] = field(default_factory=list)
    #: Stopped by a signal with dead letters possibly left; a signal that came once the
    #: dead-letter queue had answered empty (or ``limit`` was reached) stops nothing.
    interrupted: bool = False

    @property
    def handled(self) -> int:
        """Dead letters sent back so far (each at most once per run)."""
        return len(self.moved) + len(self.doubled)


async def redrive(
    client: QueueClient,
    queue: QueueName,
    *,
    limit: int | None,
    session_id: str | None,
    batch_size: int,
    timeout: float,
    stop: StopSignal,
    progress: Callable[[int], None],
) -> RedriveReport:
    """Move dead letters of ``queue`` back to it, ``batch_size`` at a time.

    Each batch is received from the dead-letter queue, sent to the queue, and only then
    completed in the dead-letter queue; a stop signal is honoured between batches, never
    inside one. Dead letters of other sessions (``session_id``) stay locked while the redrive
    runs, so they are not received twice, and are abandoned at the end.
    """
    report = RedriveReport()
    dead_letter = queue.dead_letter
    skipped: dict[str, ReceivedMessage] = {}  # held locked until the end, then given back
    sent: set[str] = set()  # ids sent back (or maybe sent) in this run
    cleaned: set[str] = set()  # doubled ids whose leftover dead letter we tried to complete
    try:
        while limit is None or report.handled < limit:
            if stop.requested():
                report.interrupted = True
                break
            want = batch_size if limit is None else min(batch_size, limit - report.handled)
            received = await client.receive_messages(
                dead_letter, max_messages=want, timeout=timeout
            )
            if not received:
                break  # done, whether or not a signal came during this last wait
            if stop.requested():  # arrived while we waited: leave them for the next run
                await _abandon(client, received)
                report.interrupted = True
                break
            batch: list[ReceivedMessage] = []
            leftovers: list[ReceivedMessage] = []
            for message in received:
                identity = message.message_id
                if identity in sent:  # sent back earlier in this run: never send it again
                    if identity in report.doubled and identity not in cleaned:
                        leftovers.append(message)  # only its dead letter stayed
                    else:
                        skipped[identity] = message
                elif session_id is not None and message.session_id != session_id:
                    skipped[identity] = message
                else:
                    batch.append(message)
            if leftovers:
                cleaned.update(m.message_id for m in leftovers)
                await _clean_up(client, leftovers, report)
            if batch:
                sent.update(m.message_id for m in batch)
                await _move(client, queue, batch, report)
                progress(len(batch))
    finally:
        await _abandon(client, list(skipped.values()))
    return report


async def _clean_up(
    client: QueueClient, leftovers: list[ReceivedMessage], report: RedriveReport
) -> None:
    """Complete dead letters that were sent back earlier in this run (never send twice)."""
    try:
        await client.complete_messages(leftovers)
    except BatchSettleError as partial:
        done = set(partial.settled)
    else:
        done = {m.message_id for m in leftovers}
    for message in leftovers:
        if message.message_id in done:
            report.doubled.remove(message.message_id)
            report.moved.append(redrive_id(message))


async def _move(
    client: QueueClient, queue: QueueName, batch: list[ReceivedMessage], report: RedriveReport
) -> None:
    """Send ``batch`` to ``queue``, then complete in the dead-letter queue what was sent."""
    try:
        await client.send_messages(queue, [resend(m) for m in batch])
    except BatchSendError as partial:
        sent = set(partial.sent)
        await _complete(client, [m for m in batch if redrive_id(m) in sent], report)
        unsent = [m for m in batch if redrive_id(m) not in sent]
        unknown = set(partial.unknown)
        await _abandon(client, [m for m in unsent if redrive_id(m) not in unknown])
        raise
    except QueueError:
        await _abandon(client, batch)
        raise
    await _complete(client, batch, report)


async def _complete(
    client: QueueClient, messages: Sequence[ReceivedMessage], report: RedriveReport
) -> None:
    """Complete redriven dead letters in one batch; a retryable failure is tried once more.
    What stays (or may stay) dead-lettered is reported as ``doubled``."""
    pending = list(messages)
    for attempt in range(2):
        try:
            await client.complete_messages(pending)
        except BatchSettleError as partial:
            settled = set(partial.settled)
            report.moved.extend(redrive_id(m) for m in pending if m.message_id in settled)
            retry = {i for i, error in partial.failed if error.retryable and not attempt}
            retry -= set(partial.unknown)
            for message in pending:
                if message.message_id not in settled and message.message_id not in retry:
                    _log.warning(
                        "message %s is back in its queue but its dead letter may remain",
                        message.message_id,
                    )
                    report.doubled.append(message.message_id)
            pending = [m for m in pending if m.message_id in retry]
            if not pending:
                return
        else:
            report.moved.extend(redrive_id(m) for m in pending)
            return


async def _abandon(client: QueueClient, messages: Sequence[ReceivedMessage]) -> None:
    """Give messages back in as few calls as the provider allows (best effort: one whose lock
    lapsed is back already, and any other comes back when its lock lapses)."""
    if not messages:
        return
    try:
        await client.abandon_messages(messages)
    except QueueError as exc:
        _log.debug("could not abandon every message of %s: %s", _ids(messages), exc)


def _ids(messages: Sequence[ReceivedMessage]) -> str:
    return ", ".join(m.message_id for m in messages)


async def purge(
    client: QueueClient,
    queue: QueueName,
    *,
    timeout: float,
    stop: StopSignal,
    progress: Callable[[int], None],
) -> int:
    """Complete every dead letter of ``queue``; returns how many went."""
    purged = 0
    while not stop.requested():
        received = await client.receive_messages(
            queue.dead_letter, max_messages=_PAGE, timeout=timeout
        )
        if not received:
            break
        for message in received:
            try:
                await client.complete_message(message)
            except MessageLockLost:
                continue
            purged += 1
        progress(len(received))
    return purged
